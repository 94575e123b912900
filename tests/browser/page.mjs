// What the browser scripts share: a page on an origin of its own (so that
// every call to the gateway is cross-origin) that loads one library.

import http from "node:http";

// Serves `library` (a script's bytes) at /<name>.js and, at every other
// path, a page that loads it; answers the server and its origin.
export async function servePage(name, library) {
  const page = `<!doctype html><html><head><script src="/${name}.js"></script></head><body>${name}</body></html>`;
  const server = http.createServer((req, res) => {
    if (req.url === `/${name}.js`) {
      res.writeHead(200, { "content-type": "application/javascript" });
      res.end(library);
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(page);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}
