/*
 * occystrap's fast gzip: one whole buffer in, one gzip member out, compressed by
 * Intel's ISA-L (igzip) on libuv's thread pool. Node's zlib deflates about 37 MB/s per
 * core here; igzip's level 2 about 370 MB/s, at a size between zlib's levels 1 and 6.
 *
 *   compress(input: Uint8Array, output: Uint8Array, level: 0..3): Promise<number>
 *
 * resolves with the bytes written to `output`, or 0 if they did not fit (the caller
 * retries with a larger buffer). Both buffers are held by references until the work is
 * done, so the caller must not touch them meanwhile. ISA-L's gzip header carries no name
 * and mtime 0, so equal input, level and CPU give equal bytes.
 *
 * Built by scripts/build-native.mjs with the C compiler and Node's own headers; the
 * shell falls back to node:zlib when it is absent (src/shell/fs/gzip-engine.ts).
 */
#include <isa-l/igzip_lib.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input_ref;
  napi_ref output_ref;
  uint8_t *input;
  size_t input_len;
  uint8_t *output;
  size_t output_len;
  uint32_t level;
  size_t written;
  const char *error;
} Job;

static const uint32_t level_buf_sizes[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT, ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};

static void execute(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  struct isal_zstream stream;
  isal_deflate_stateless_init(&stream);
  uint8_t *level_buf = malloc(level_buf_sizes[job->level]);
  if (level_buf == NULL) {
    job->error = "out of memory for the compressor's buffer";
    return;
  }
  stream.level = job->level;
  stream.level_buf = level_buf;
  stream.level_buf_size = level_buf_sizes[job->level];
  stream.gzip_flag = IGZIP_GZIP;
  stream.end_of_stream = 1;
  stream.flush = NO_FLUSH;
  stream.next_in = job->input;
  stream.avail_in = (uint32_t)job->input_len;
  stream.next_out = job->output;
  stream.avail_out = (uint32_t)job->output_len;
  int status = isal_deflate_stateless(&stream);
  free(level_buf);
  if (status == COMP_OK) job->written = stream.total_out;
  else if (status == STATELESS_OVERFLOW) job->written = 0;
  else job->error = "isal_deflate_stateless failed";
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  napi_value result;
  if (status != napi_ok || job->error != NULL) {
    napi_value message;
    napi_create_string_utf8(env, job->error != NULL ? job->error : "gzip work was cancelled", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &result);
    napi_reject_deferred(env, job->deferred, result);
  } else {
    napi_create_double(env, (double)job->written, &result);
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_reference(env, job->input_ref);
  napi_delete_reference(env, job->output_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static int typed_bytes(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is_typed;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  void *raw;
  if (napi_get_typedarray_info(env, value, &type, length, &raw, NULL, NULL) != napi_ok || type != napi_uint8_array) return 0;
  *data = raw;
  return 1;
}

static napi_value compress(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return fail(env, "compress(input, output, level) takes three arguments");
  Job *job = calloc(1, sizeof(Job));
  if (job == NULL) return fail(env, "out of memory");
  if (!typed_bytes(env, argv[0], &job->input, &job->input_len) || !typed_bytes(env, argv[1], &job->output, &job->output_len)) {
    free(job);
    return fail(env, "compress: input and output must be Uint8Arrays");
  }
  if (job->input_len > UINT32_MAX || job->output_len > UINT32_MAX) {
    free(job);
    return fail(env, "compress: buffers must be under 4 GiB");
  }
  if (napi_get_value_uint32(env, argv[2], &job->level) != napi_ok || job->level > ISAL_DEF_MAX_LEVEL) {
    free(job);
    return fail(env, "compress: level must be 0 to 3");
  }
  napi_value promise, name;
  napi_create_reference(env, argv[0], 1, &job->input_ref);
  napi_create_reference(env, argv[1], 1, &job->output_ref);
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "occystrap-isal-gzip", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, max_level;
  napi_create_function(env, "compress", NAPI_AUTO_LENGTH, compress, NULL, &fn);
  napi_set_named_property(env, exports, "compress", fn);
  napi_create_uint32(env, ISAL_DEF_MAX_LEVEL, &max_level);
  napi_set_named_property(env, exports, "maxLevel", max_level);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
