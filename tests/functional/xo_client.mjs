// Xen Orchestra's client library (npm `xen-api`) driven line by line for
// tests/functional/test_xen_orchestra.py.
//
// usage: node xo_client.mjs NODE_MODULES_DIR URL USER PASSWORD TRANSPORT
//
// TRANSPORT is the library's `transport` option: "json-rpc", "xml-rpc" or
// "auto". Everything the script says is one JSON object per line on stdout:
//
//   {"event":"fetched","counts":{type:n},"sessionId":…,"pool":…}  after the
//       library's full object fetch (`objectsFetched`)
//   {"event":"ready"}                 then it takes commands, one JSON line each:
//   {"event":"add"|"update"|"remove","type":…,"ref":…,"name_label":…,"t":ms}
//       for every change of the object cache, at any time after "ready"
//       (a removal names the object's $id instead of its name_label)
//
// Commands (stdin):
//   {"cmd":"callAsync","method":"VM.destroy","args":[ref]}
//       -> {"event":"callAsync","result":…} or
//          {"event":"callAsync","error":{"code":…,"params":[…]}}
//   {"cmd":"barrier","ref":optional}
//       -> {"event":"barrier","ms":…,"name_label":… (of ref's object, if given)}
//   {"cmd":"disconnect"} -> {"event":"disconnected","sessionId":…}
//   {"cmd":"exit"} (or end of input) -> closes the HTTP agent and exits 0
//
// Any unexpected failure prints {"event":"fatal","error":…} and exits 1.

import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'

const [modulesDir, url, user, password, transport] = process.argv.slice(2)

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function fatal(error) {
  say({ event: 'fatal', error: String(error?.stack ?? error) })
  process.exit(1)
}

process.on('unhandledRejection', fatal)

const { createClient } = await import(pathToFileURL(join(modulesDir, 'xen-api', 'index.mjs')).href)

const xapi = createClient({ url, auth: { user, password }, transport, allowUnauthorized: true })

// $id -> {type, ref}: the collection says only the $id of a removed object
const known = new Map()

function remember(obj) {
  known.set(obj.$id, { type: obj.$type, ref: obj.$ref })
}

function report(kind) {
  return items => {
    const t = Date.now()
    for (const [id, obj] of Object.entries(items)) {
      if (obj === undefined) {
        const { type, ref } = known.get(id) ?? {}
        known.delete(id)
        say({ event: kind, type, ref, id, t })
      } else {
        remember(obj)
        say({ event: kind, type: obj.$type, ref: obj.$ref, name_label: obj.name_label, t })
      }
    }
  }
}

async function main() {
  await xapi.connect()
  await xapi.objectsFetched
  const counts = {}
  for (const obj of Object.values(xapi.objects.all)) {
    counts[obj.$type] = (counts[obj.$type] ?? 0) + 1
    remember(obj)
  }
  const sessionId = xapi.sessionId
  say({ event: 'fetched', counts, sessionId, pool: xapi.pool.$ref })

  xapi.objects.on('add', report('add'))
  xapi.objects.on('update', report('update'))
  xapi.objects.on('remove', report('remove'))
  say({ event: 'ready' })

  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
  for await (const line of lines) {
    if (line.trim() === '') continue
    const cmd = JSON.parse(line)
    if (cmd.cmd === 'callAsync') {
      try {
        const result = await xapi.callAsync(cmd.method, ...cmd.args)
        say({ event: 'callAsync', result })
      } catch (error) {
        if (error?.code === undefined) throw error
        say({ event: 'callAsync', error: { code: error.code, params: error.params } })
      }
    } else if (cmd.cmd === 'barrier') {
      const start = Date.now()
      const obj = await xapi.barrier(cmd.ref)
      say({ event: 'barrier', ms: Date.now() - start, name_label: obj?.name_label })
    } else if (cmd.cmd === 'disconnect') {
      await xapi.disconnect()
      say({ event: 'disconnected', sessionId })
    } else if (cmd.cmd === 'exit') {
      break
    } else {
      throw new Error('unknown command: ' + line)
    }
  }
  // the library's logout is fire-and-forget: the test saw it land before saying "exit"
  process.exit(0)
}

main().catch(fatal)
