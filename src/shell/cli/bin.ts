/**
 * The CLI's entry: what `bin/occystrap.js` runs. The build bundles it (with esbuild, into
 * dist/bin/) so start-up reads a few files instead of hundreds of modules.
 *
 * @module
 */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
