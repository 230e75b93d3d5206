// Xen Orchestra's client library (npm `xen-api`) moving a VM out and back in through its
// resource calls, for tests/functional/test_import_export_xo.py.
//
// usage: node xo_transfer.mjs NODE_MODULES_DIR URL USER PASSWORD VM_REF SR_REF FILE COMPRESSION
//
// getResource('/export/', {ref, use_compression}) with a task, its body written to FILE,
// then putResource(FILE as a stream of known length, '/import/', {sr_id}) with a task.
// Prints one JSON line: {"exportTask":…,"exported":bytes,"imported":<the import task's result>}
// or {"error":…} (exit 1).

import { createReadStream, createWriteStream, statSync } from 'node:fs'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { pathToFileURL } from 'node:url'

const [modulesDir, url, user, password, vm, sr, file, compression] = process.argv.slice(2)

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

try {
  const { createClient } = await import(pathToFileURL(join(modulesDir, 'xen-api', 'index.mjs')).href)
  const xapi = createClient({ url, auth: { user, password }, allowUnauthorized: true })
  await xapi.connect()
  await xapi.objectsFetched

  const query = { ref: vm }
  if (compression) query.use_compression = compression
  const exported = await xapi.getResource('/export/', { query, task: true })
  await pipeline(exported.body, createWriteStream(file))
  await exported.task

  const body = createReadStream(file)
  body.length = statSync(file).size
  const imported = await xapi.putResource(body, '/import/', { query: { sr_id: sr }, task: true })

  say({ exported: statSync(file).size, imported })
  await xapi.disconnect()
  process.exit(0)
} catch (error) {
  say({ error: String(error?.stack ?? error), code: error?.code, params: error?.params })
  process.exit(1)
}
