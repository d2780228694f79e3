// Runs rqlite-js (the real npm package) against our cluster; prints one JSON
// document with what each call returned, for test_compat_js.py to check.
const { DataApiClient, BackupApiClient, StatusApiClient } = require('rqlite-js')

async function readStream (s) {
  const chunks = []
  for await (const c of s) chunks.push(Buffer.from(c))
  return Buffer.concat(chunks)
}

async function main () {
  const hosts = process.argv.slice(2)
  const data = new DataApiClient(hosts)
  const out = {}
  let r = await data.execute('CREATE TABLE foo (id integer not null primary key, name text)')
  out.create_error = r.hasError()
  r = await data.execute('INSERT INTO foo(name) VALUES("fiona")')
  out.insert_id = r.get(0).getLastInsertId()
  r = await data.execute([['INSERT INTO foo(name) VALUES(?)', 'declan'],
    ['INSERT INTO foo(name) VALUES(:name)', { name: 'sinead' }]])
  out.param_ids = [r.get(0).getLastInsertId(), r.get(1).getLastInsertId()]
  r = await data.query('SELECT name FROM foo WHERE id=1')
  out.name1 = r.get(0).get('name')
  r = await data.execute('UPDATE foo SET name="justin" WHERE name="fiona"')
  out.rows_affected = r.get(0).getRowsAffected()
  r = await data.execute(['INSERT INTO foo(name) VALUES("tx1")', 'INSERT INTO bar(name) VALUES("x")'],
    { transaction: true })
  out.tx_error = r.hasError()
  out.tx_error_text = String(r.getFirstError() && r.getFirstError().getError ? r.getFirstError().getError() : r.getFirstError())
  for (const level of ['none', 'weak', 'strong']) {
    r = await data.query(['SELECT COUNT(*) AS c FROM foo', 'SELECT name FROM foo ORDER BY id'], { level })
    out['count_' + level] = r.get(0).get('c')
    out['names_' + level] = r.get(1).toArray ? r.toArray()[1] : null
  }
  r = await data.query('SELECT * FROM nope')
  out.query_error = r.hasError()
  const backup = new BackupApiClient(hosts)
  const dump = await readStream(await backup.backup('sql'))
  out.dump_head = dump.toString().split('\n').slice(0, 3)
  const bin = await readStream(await backup.backup())
  out.binary_magic = bin.slice(0, 15).toString()
  await readStream(await backup.load('CREATE TABLE loaded (x); INSERT INTO loaded VALUES (7);'))
  r = await data.query('SELECT x FROM loaded', { level: 'strong' })
  out.loaded = r.get(0).get('x')
  const status = new StatusApiClient(hosts)
  const st = await status.status()
  out.status_leader = !!(st.body && st.body.store && st.body.store.leader)
  console.log(JSON.stringify(out))
}

main().catch((e) => { console.error(e); process.exit(1) })
