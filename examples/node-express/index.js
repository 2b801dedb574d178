// Minimal Express app following the Hop3 example-app contract.
const fs = require("fs");
const os = require("os");
const path = require("path");
const express = require("express");

const NAME = "node-express";
const VERSION = fs.readFileSync(path.join(__dirname, "VERSION"), "utf8").trim();
const PORT = Number(process.env.PORT);

const app = express();

app.get("/", (req, res) => res.type("text/plain").send(`Hello from ${NAME} v${VERSION}`));

app.get("/health", (req, res) => res.type("text/plain").send("ok"));

app.get("/config/:name", (req, res) => {
  const value = process.env[`APP_${req.params.name}`];
  if (value === undefined) return res.status(404).type("text/plain").send("not set");
  res.type("text/plain").send(value);
});

app.get("/whoami", (req, res) =>
  res.json({
    pid: process.pid,
    port: PORT,
    user: os.userInfo().username,
    release: process.env.HOP3_RELEASE ?? null,
  }),
);

// Written by `npm run build` (see build.js).
app.get("/build-info", (req, res) => {
  res.type("text/plain").sendFile(path.join(__dirname, "dist", "build-info.txt"));
});

const server = app.listen(PORT, "127.0.0.1", () => {
  console.log(`${NAME} v${VERSION} listening on 127.0.0.1:${PORT}`);
});

process.on("SIGTERM", () => {
  console.log("SIGTERM received, shutting down");
  server.close(() => process.exit(0));
  server.closeIdleConnections(); // Node 18 keeps idle keep-alive sockets open otherwise
  setTimeout(() => process.exit(0), 10000).unref();
});
