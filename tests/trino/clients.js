// Drives the gateway's Trino endpoint with npm's `trino-client` and
// `presto-client`. Arguments: the gateway's base URL, the project, its read
// key, another project's name. Prints one JSON object of what each answered.
const { Trino, BasicAuth } = require('trino-client');
const presto = require('presto-client');

const [base, project, readKey, other] = process.argv.slice(2);
const url = new URL(base);

async function viaTrino(sql) {
  const trino = Trino.create({ server: base, catalog: 'weir', schema: project, auth: new BasicAuth('analyst', readKey) });
  const pages = [];
  for await (const page of await trino.query(sql)) pages.push(page);
  const last = pages[pages.length - 1];
  return {
    columns: (pages.find((p) => p.columns) || {}).columns?.map((c) => [c.name, c.type]) ?? null,
    rows: pages.flatMap((p) => p.data ?? []),
    state: last.stats?.state ?? null,
    error: last.error ? last.error.errorName : null,
  };
}

function viaPresto(sql) {
  return new Promise((resolve) => {
    const client = new presto.Client({
      host: url.hostname, port: Number(url.port), catalog: 'weir', schema: project, user: 'analyst',
      basic_auth: { user: 'analyst', password: readKey },
    });
    const rows = [];
    let columns = null;
    client.execute({
      query: sql,
      data: (error, data, cols) => { rows.push(...data); columns = cols.map((c) => [c.name, c.type]); },
      success: (error, stats) => resolve({ rows, columns, state: stats.state, error: null }),
      error: (error) => resolve({ rows, columns, state: null, error: error.errorName ?? String(error.message) }),
    });
  });
}

(async () => {
  const out = {
    trino: await viaTrino('SELECT url, n FROM pageview ORDER BY url'),
    trino_other: await viaTrino(`SELECT * FROM weir.${other}.pageview`),
    trino_tables: await viaTrino('SHOW TABLES'),
    presto: await viaPresto('SELECT url, n FROM pageview ORDER BY url'),
    presto_other: await viaPresto(`SELECT * FROM ${other}.pageview`),
  };
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
