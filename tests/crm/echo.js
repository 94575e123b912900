// A json-server middleware for the CRM pass-through's tests: `/echo`
// answers what the upstream received (method, URL, headers, body), so that
// a test can see what the gateway forwarded; `/big` answers a body of the
// size asked for. Everything else is json-server's own.
module.exports = (req, res, next) => {
  if (req.path === "/echo") {
    const answer = (body) => res.json({ method: req.method, url: req.originalUrl, headers: req.headers, body });
    // json-server's body parser may have read a JSON body already.
    if (req.body !== undefined && req.readableEnded) {
      answer(typeof req.body === "string" ? req.body : JSON.stringify(req.body));
      return;
    }
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => answer(body));
    return;
  }
  if (req.path === "/big") {
    res.type("text/plain").send("x".repeat(Number(req.query.bytes || 0)));
    return;
  }
  next();
};
