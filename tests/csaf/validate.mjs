// Validates CSAF 2.0 documents with the schema tests and the mandatory tests (6.1)
// of @secvisogram/csaf-validator-lib. Usage: node validate.mjs FILE...
// Prints every failing test of every document and exits 1 when any document fails.
import { readFile } from 'node:fs/promises'
import validate from '@secvisogram/csaf-validator-lib/validate.js'
import * as schemaTests from '@secvisogram/csaf-validator-lib/schemaTests.js'
import * as mandatoryTests from '@secvisogram/csaf-validator-lib/mandatoryTests.js'

const tests = [...Object.values(schemaTests), ...Object.values(mandatoryTests)]
let failed = 0
for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(await readFile(file, 'utf8'))
  const result = await validate(tests, doc)
  if (!result.isValid) {
    failed += 1
    const failures = result.tests.filter((t) => !t.isValid).map((t) => ({ test: t.name, errors: t.errors }))
    console.log(JSON.stringify({ file, failures }, null, 2))
  }
}
console.log(`${process.argv.length - 2 - failed} valid, ${failed} invalid (${tests.length} tests each)`)
process.exit(failed > 0 ? 1 : 0)
