// Mint compact JWS age tokens with the npm `jose` library, for agegate's interop tests.
//
// stdin: one JSON spec, or an array of specs:
//   {"alg": "ES256", "jwk": {...private JWK...}, "header": {...}, "claims": {...}}
//   {"alg": "HS256", "secret": "<utf-8 string used as the HMAC key>", ...}
// stdout: one compact JWS per spec, one per line, in order.
//
// The payload is exactly JSON.stringify(claims): jose adds no claims of its
// own, so the tests control every byte the verifier sees.
import { CompactSign, importJWK } from "jose";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function mint(spec) {
  const key = spec.secret !== undefined
    ? new TextEncoder().encode(spec.secret)
    : await importJWK(spec.jwk, spec.alg);
  const payload = new TextEncoder().encode(JSON.stringify(spec.claims));
  return new CompactSign(payload)
    .setProtectedHeader({ alg: spec.alg, ...(spec.header ?? {}) })
    .sign(key);
}

const input = JSON.parse(await readStdin());
const specs = Array.isArray(input) ? input : [input];
for (const spec of specs) {
  process.stdout.write((await mint(spec)) + "\n");
}
