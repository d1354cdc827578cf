// size.mjs measures what the client costs a web page: dist/index.js bundled
// and minified by esbuild (in memory), then gzipped at level 9. It prints
// the sizes and exits 1 over the budget (issue #10: 5 KB minified and
// gzipped), so `npm run build` fails when the library outgrows it.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const BUDGET = 5120;
const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url));

const out = await build({
  entryPoints: [entry],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  write: false,
  logLevel: 'error',
});
const min = out.outputFiles[0].contents;
const gz = gzipSync(min, { level: 9 }).length;
console.log(`dist/index.js: ${min.length} bytes minified, ${gz} bytes minified+gzipped (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error(`size.mjs: ${gz} bytes is over the budget of ${BUDGET}`);
  process.exit(1);
}
