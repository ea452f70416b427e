// Validates a CSAF 2.0 provider-metadata.json against OASIS's provider metadata JSON schema
// (provider_json_schema.json, beside this script, as OASIS publishes it with CSAF v2.0), with the JSON
// Schema validator of @secvisogram/csaf-validator-lib (ajv, draft 2020-12, with formats) and
// the CSAF 2.0 document schema it bundles, whose publisher the provider schema refers to.
// Usage: node validate_provider.mjs PREFIX FILE, where PREFIX is the npm prefix the library is
// installed under (TOUCHMARK_TEST_CSAF_VALIDATOR). Prints {"isValid", "errors": [{message,
// instancePath}]} as JSON on stdout.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const [prefix, file] = process.argv.slice(2)
const modules = join(prefix, 'node_modules')
const load = (path) => import(pathToFileURL(join(modules, path)).href)

const lib = '@secvisogram/csaf-validator-lib'
// The library's own validator: ajv for draft 2020-12, with formats and the CVSS schemas the
// document schema refers to.
const { default: ajv } = await load(`${lib}/lib/shared/csafAjv.js`)
const { default: csaf } = await load(`${lib}/lib/schemaTests/csaf_2_0/schema.js`)

const here = dirname(fileURLToPath(import.meta.url))
const provider = JSON.parse(readFileSync(join(here, 'provider_json_schema.json'), 'utf8'))
// The provider schema refers to the publisher of the document schema, by its $id.
ajv.addSchema(csaf)
const validate = ajv.compile(provider)

const document = JSON.parse(readFileSync(file, 'utf8'))
const isValid = validate(document)
const errors = (validate.errors ?? []).map((e) => ({
  message: e.message,
  instancePath: e.instancePath,
}))
process.stdout.write(JSON.stringify({ isValid, errors }) + '\n')
