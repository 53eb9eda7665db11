#!/usr/bin/env node
// The bundled CLI (npm run build makes it from dist/src with esbuild; see scripts/bundle.mjs).
import '../dist/bin/bin.js';
