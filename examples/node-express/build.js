// Build step run by `npm run build`: records when and how the app was built.
const fs = require("fs");
const path = require("path");

const version = fs.readFileSync(path.join(__dirname, "VERSION"), "utf8").trim();
const info = `node-express v${version} built at ${new Date().toISOString()} with node ${process.version}\n`;

fs.mkdirSync(path.join(__dirname, "dist"), { recursive: true });
fs.writeFileSync(path.join(__dirname, "dist", "build-info.txt"), info);
process.stdout.write(`wrote dist/build-info.txt: ${info}`);
