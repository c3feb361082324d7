// Issues an SD-JWT VC and presents it with a KB-JWT using @sd-jwt/sd-jwt-vc 0.19.0 and
// @sd-jwt/crypto-nodejs 0.19.0 (an implementation independent of agegate's).
// stdin: {issuer_key, x5c, holder_key, payload, frame, present, kb, tamper, times}
// stdout: {"presentations": [...]}
import { SDJwtVcInstance } from "@sd-jwt/sd-jwt-vc";
import { ES256, digest, generateSalt } from "@sd-jwt/crypto-nodejs";

const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
}));

const sdjwt = new SDJwtVcInstance({
  signer: await ES256.getSigner(input.issuer_key),
  signAlg: "ES256",
  kbSigner: await ES256.getSigner(input.holder_key),
  kbSignAlg: "ES256",
  hasher: digest,
  hashAlg: "sha-256",
  saltGenerator: generateSalt,
});

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const credential = await sdjwt.issue(input.payload, input.frame, { header: { x5c: input.x5c } });
const presentations = [];
for (let i = 0; i < (input.times ?? 1); i++) {
  if (input.tamper) {
    // The holder flips its own disclosure and signs a KB-JWT over the result, so only the
    // issuer's digests can tell: the verifier must answer digest_mismatch.
    const bare = await sdjwt.present(credential, input.present);
    const [jwt, ...rest] = bare.split("~");
    const forged = b64url(JSON.stringify([generateSalt(16), "18", true]));
    const tampered = [jwt, forged, ...rest.slice(1)].join("~");
    const sdHash = b64url(await digest(tampered, "sha-256"));
    const kb = await sdjwt.createKBJwt({ payload: input.kb }, sdHash);
    presentations.push(tampered + kb.encodeJwt());
  } else if (input.kb) {
    presentations.push(await sdjwt.present(credential, input.present, { kb: { payload: input.kb } }));
  } else {
    presentations.push(await sdjwt.present(credential, input.present));
  }
}
process.stdout.write(JSON.stringify({ presentations }));
