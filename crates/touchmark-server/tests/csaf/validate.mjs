// Validates a CSAF 2.0 document with the BSI's secvisogram validator
// (@secvisogram/csaf-validator-lib): the strict schema test and every mandatory test (§6.1).
// Usage: node validate.mjs PREFIX FILE, where PREFIX is the npm prefix the library is installed
// under (TOUCHMARK_TEST_CSAF_VALIDATOR). Prints {"isValid", "errors": [{test, message,
// instancePath}]} as JSON on stdout.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const [prefix, file] = process.argv.slice(2)
const lib = join(prefix, 'node_modules', '@secvisogram', 'csaf-validator-lib')
const load = (name) => import(pathToFileURL(join(lib, name)).href)

const { default: validateStrict } = await load('validateStrict.js')
const schema = await load('schemaTests.js')
const mandatory = await load('mandatoryTests.js')

const document = JSON.parse(readFileSync(file, 'utf8'))
const tests = [schema.csaf_2_0_strict, ...Object.values(mandatory)]
const result = await validateStrict(tests, document)
const errors = result.tests.flatMap((t) =>
  t.errors.map((e) => ({ test: t.name, message: e.message, instancePath: e.instancePath }))
)
process.stdout.write(
  JSON.stringify({ isValid: result.isValid, tests: result.tests.length, errors }) + '\n'
)
