// An independent check of Keyway's tokens: verifies a JWT against a JWKS with `jose`, the way a
// resource server written in Node would, sharing no code with Keyway.
//
//   node e2e/verify-jwt.mjs <jwks.json file or http(s) URL> <token>
//
// Prints the verified payload as JSON and exits 0; exits 1 with the reason on stderr when verification
// fails, 2 on a usage error.
import { readFile } from "node:fs/promises";
import { createLocalJWKSet, jwtVerify } from "jose";

const [source, token] = process.argv.slice(2);
if (!source || !token) {
  console.error("usage: node e2e/verify-jwt.mjs <jwks.json file or URL> <token>");
  process.exit(2);
}

try {
  const text = /^https?:\/\//.test(source)
    ? await (await fetch(source)).text()
    : await readFile(source, "utf8");
  const jwks = createLocalJWKSet(JSON.parse(text));
  const { payload } = await jwtVerify(token, jwks, {
    issuer: "keyway",
    audience: "keyway",
  });
  console.log(JSON.stringify(payload));
} catch (e) {
  console.error(`verification failed: ${e.code ?? ""} ${e.message}`);
  process.exit(1);
}
