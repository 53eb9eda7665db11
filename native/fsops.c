/*
 * The file-system calls extraction needs that Node does not have: device nodes and FIFOs,
 * and extended attributes (security.capability, trusted.overlay.opaque). Every call
 * acts on the path itself, never through a symlink (mknod creates; the l*xattr calls
 * do not follow). Synchronous, like fs.*Sync: each is one quick syscall.
 *
 *   mknod(path, mode, major, minor)         mode includes the type bits (S_IFCHR, S_IFBLK, S_IFIFO)
 *   lsetxattr(path, name, value: Uint8Array)
 *   fsetxattr(fd, name, value: Uint8Array)  on a file occystrap just created and holds open
 *   lgetxattr(path, name): Uint8Array | null (null: no such attribute)
 *   llistxattr(path): string[]
 *   writeFile(path, data: Uint8Array, mode, uid, gid, chown: boolean, mtime): Promise<void>
 *       on libuv's thread pool, in one job: create the file O_CREAT|O_EXCL|O_NOFOLLOW
 *       (0600), write every byte, fchown (when chown), fchmod (after the owner, so
 *       setuid bits survive), futimens (atime = mtime, seconds with a fraction), close.
 *       A small file costs one pool job instead of six round trips to the main thread.
 *
 *   alignedBuffer(size): ArrayBuffer
 *       `size` bytes at an address aligned to 4096 (posix_memalign), freed when collected:
 *       O_DIRECT writes need aligned memory, which Node's own buffers do not promise.
 *
 * A failure throws an Error whose `code` is the errno name (EPERM, ENOTSUP, ...) and whose
 * `syscall` and `path` say where, as Node's own fs errors do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <node_api.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>

#define MAX_PATH 4096
#define MAX_NAME 256

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOTSUP: return "ENOTSUP";
    case ENODATA: return "ENODATA";
    case ERANGE: return "ERANGE";
    case E2BIG: return "E2BIG";
    case EDQUOT: return "EDQUOT";
    case EBADF: return "EBADF";
    default: return "EIO";
  }
}

static napi_value errno_error(napi_env env, int e, const char *syscall, const char *path) {
  char message[MAX_PATH + 128];
  snprintf(message, sizeof message, "%s: %s, %s '%s'", errno_name(e), strerror(e), syscall, path);
  napi_value msg, code, err, sys, p;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, errno_name(e), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &err);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &p);
  napi_set_named_property(env, err, "syscall", sys);
  napi_set_named_property(env, err, "path", p);
  return err;
}

static napi_value throw_errno(napi_env env, int e, const char *syscall, const char *path) {
  napi_throw(env, errno_error(env, e, syscall, path));
  return NULL;
}

static napi_value type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == want;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok) return 0;
  return len < size - 1 && strlen(buf) == len; /* no truncation, no NUL inside */
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_typed;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  return napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) == napi_ok && type == napi_uint8_array;
}

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[MAX_PATH];
  uint32_t mode, major, minor;
  if (!get_args(env, info, 4, argv) || !get_string(env, argv[0], path, sizeof path) || napi_get_value_uint32(env, argv[1], &mode) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &major) != napi_ok || napi_get_value_uint32(env, argv[3], &minor) != napi_ok)
    return type_error(env, "mknod(path, mode, major, minor)");
  if (mknod(path, (mode_t)mode, makedev(major, minor)) != 0) return throw_errno(env, errno, "mknod", path);
  return NULL;
}

static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[MAX_PATH], name[MAX_NAME];
  void *value;
  size_t len;
  if (!get_args(env, info, 3, argv) || !get_string(env, argv[0], path, sizeof path) || !get_string(env, argv[1], name, sizeof name) || !get_bytes(env, argv[2], &value, &len))
    return type_error(env, "lsetxattr(path, name, value: Uint8Array)");
  if (lsetxattr(path, name, value, len, 0) != 0) return throw_errno(env, errno, "lsetxattr", path);
  return NULL;
}

static napi_value js_fsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  char name[MAX_NAME];
  void *value;
  size_t len;
  if (!get_args(env, info, 3, argv) || napi_get_value_int32(env, argv[0], &fd) != napi_ok || !get_string(env, argv[1], name, sizeof name) || !get_bytes(env, argv[2], &value, &len))
    return type_error(env, "fsetxattr(fd, name, value: Uint8Array)");
  if (fsetxattr(fd, name, value, len, 0) != 0) return throw_errno(env, errno, "fsetxattr", name);
  return NULL;
}

static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  char path[MAX_PATH], name[MAX_NAME];
  if (!get_args(env, info, 2, argv) || !get_string(env, argv[0], path, sizeof path) || !get_string(env, argv[1], name, sizeof name)) return type_error(env, "lgetxattr(path, name)");
  for (;;) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0) {
      if (errno == ENODATA) {
        napi_get_null(env, &result);
        return result;
      }
      return throw_errno(env, errno, "lgetxattr", path);
    }
    void *data;
    napi_value buffer;
    napi_create_buffer(env, (size_t)size, &data, &buffer);
    ssize_t got = size == 0 ? 0 : lgetxattr(path, name, data, (size_t)size);
    if (got < 0 && errno == ERANGE) continue; /* it grew meanwhile */
    if (got < 0) return throw_errno(env, errno, "lgetxattr", path);
    if (got != size) continue;
    return buffer;
  }
}

static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  char path[MAX_PATH];
  if (!get_args(env, info, 1, argv) || !get_string(env, argv[0], path, sizeof path)) return type_error(env, "llistxattr(path)");
  for (;;) {
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) return throw_errno(env, errno, "llistxattr", path);
    char *names = malloc((size_t)size + 1);
    if (names == NULL) return throw_errno(env, ENOMEM, "llistxattr", path);
    ssize_t got = size == 0 ? 0 : llistxattr(path, names, (size_t)size);
    if (got < 0) {
      int e = errno;
      free(names);
      if (e == ERANGE) continue;
      return throw_errno(env, e, "llistxattr", path);
    }
    napi_create_array(env, &result);
    uint32_t i = 0;
    for (ssize_t at = 0; at < got;) {
      size_t n = strnlen(names + at, (size_t)(got - at));
      napi_value s;
      napi_create_string_utf8(env, names + at, n, &s);
      napi_set_element(env, result, i++, s);
      at += (ssize_t)n + 1;
    }
    free(names);
    return result;
  }
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref data_ref;
  char path[MAX_PATH];
  const uint8_t *data;
  size_t len;
  uint32_t mode, uid, gid;
  bool chown;
  struct timespec times[2];
  int error;
  const char *syscall;
} WriteJob;

static void write_execute(napi_env env, void *arg) {
  (void)env;
  WriteJob *job = arg;
  int fd = open(job->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    job->error = errno;
    job->syscall = "open";
    return;
  }
  for (size_t at = 0; at < job->len;) {
    ssize_t n = write(fd, job->data + at, job->len - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      job->error = n < 0 ? errno : EIO;
      job->syscall = "write";
      close(fd);
      return;
    }
    at += (size_t)n;
  }
  if (job->chown && fchown(fd, (uid_t)job->uid, (gid_t)job->gid) != 0) {
    job->error = errno;
    job->syscall = "fchown";
  } else if (fchmod(fd, (mode_t)(job->mode & 07777)) != 0) {
    job->error = errno;
    job->syscall = "fchmod";
  } else if (futimens(fd, job->times) != 0) {
    job->error = errno;
    job->syscall = "futimens";
  }
  if (close(fd) != 0 && job->error == 0) {
    job->error = errno;
    job->syscall = "close";
  }
}

static void write_complete(napi_env env, napi_status status, void *arg) {
  WriteJob *job = arg;
  if (status != napi_ok) {
    napi_value message, err;
    napi_create_string_utf8(env, "writeFile was cancelled", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &err);
    napi_reject_deferred(env, job->deferred, err);
  } else if (job->error != 0) {
    napi_reject_deferred(env, job->deferred, errno_error(env, job->error, job->syscall, job->path));
  } else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, job->deferred, undefined);
  }
  napi_delete_reference(env, job->data_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value js_write_file(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  WriteJob *job = calloc(1, sizeof(WriteJob));
  if (job == NULL) return throw_errno(env, ENOMEM, "writeFile", "");
  void *data;
  double mtime;
  if (!get_args(env, info, 7, argv) || !get_string(env, argv[0], job->path, sizeof job->path) || !get_bytes(env, argv[1], &data, &job->len) ||
      napi_get_value_uint32(env, argv[2], &job->mode) != napi_ok || napi_get_value_uint32(env, argv[3], &job->uid) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &job->gid) != napi_ok || napi_get_value_bool(env, argv[5], &job->chown) != napi_ok ||
      napi_get_value_double(env, argv[6], &mtime) != napi_ok || !isfinite(mtime)) {
    free(job);
    return type_error(env, "writeFile(path, data: Uint8Array, mode, uid, gid, chown, mtime)");
  }
  job->data = data;
  double sec = floor(mtime);
  job->times[0].tv_sec = job->times[1].tv_sec = (time_t)sec;
  job->times[0].tv_nsec = job->times[1].tv_nsec = (long)((mtime - sec) * 1e9);
  napi_value promise, name;
  napi_create_reference(env, argv[1], 1, &job->data_ref);
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "occystrap-write-file", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, write_execute, write_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

static void free_aligned(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value js_aligned_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t size = 0;
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &size) != napi_ok || size == 0 || size % 4096 != 0) return type_error(env, "alignedBuffer(size): size must be a positive multiple of 4096");
  void *data = NULL;
  int e = posix_memalign(&data, 4096, size);
  if (e != 0) return throw_errno(env, e, "posix_memalign", "");
  napi_value result;
  if (napi_create_external_arraybuffer(env, data, size, free_aligned, NULL, &result) != napi_ok) {
    free(data);
    return type_error(env, "alignedBuffer: cannot make an external ArrayBuffer");
  }
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  const struct { const char *name; napi_callback fn; } fns[] = {
    {"mknod", js_mknod}, {"lsetxattr", js_lsetxattr}, {"fsetxattr", js_fsetxattr}, {"lgetxattr", js_lgetxattr}, {"llistxattr", js_llistxattr},
    {"writeFile", js_write_file}, {"alignedBuffer", js_aligned_buffer},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
