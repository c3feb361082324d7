// Privacy Pass interop with Cloudflare's @cloudflare/privacypass-ts (pinned 0.8.1).
//
// stdin: one JSON command; stdout: one JSON answer.
//   {"op": "client", "www_authenticate": "<401 header value(s) joined by ', '>",
//    "issuer_request_uri": "http://.../token-request", "attestation": "<cred>"}
//     -> {"authorization": "PrivateToken token=..."}      (their client, our issuer)
//   {"op": "keygen"}
//     -> {"pkcs8": "<b64>", "spki": "<b64 RFC 9578 RSASSA-PSS SPKI>"}
//   {"op": "issue", "pkcs8": "<b64>", "spki": "<b64>", "www_authenticate": "..."}
//     -> {"authorization": "PrivateToken token=..."}      (their client and issuer)
import {
  AuthorizationHeader,
  MediaType,
  WWWAuthenticateHeader,
  publicVerif,
  util,
} from "@cloudflare/privacypass-ts";

const { BlindRSAMode, Client, Issuer } = publicVerif;
const RSA_PSS = { name: "RSA-PSS", hash: "SHA-384" };

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64"));

function firstChallenge(header) {
  const found = WWWAuthenticateHeader.parse(header);
  if (found.length === 0) throw new Error("no PrivateToken challenge");
  return found[0];
}

async function asClient(cmd) {
  const chl = firstChallenge(cmd.www_authenticate);
  const client = new Client(BlindRSAMode.PSS);
  const request = await client.createTokenRequest(chl.challenge, chl.tokenKey);
  const response = await fetch(cmd.issuer_request_uri, {
    method: "POST",
    headers: {
      "Content-Type": MediaType.PRIVATE_TOKEN_REQUEST,
      Accept: MediaType.PRIVATE_TOKEN_RESPONSE,
      Authorization: `Attestation ${cmd.attestation}`,
    },
    body: request.serialize(),
  });
  if (response.status !== 200) throw new Error(`issuer answered ${response.status}`);
  const tokRes = client.deserializeTokenResponse(new Uint8Array(await response.arrayBuffer()));
  const token = await client.finalize(tokRes);
  return { authorization: new AuthorizationHeader(token).toString(true) };
}

async function keygen() {
  const pair = await Issuer.generateKey(BlindRSAMode.PSS, {
    modulusLength: 2048,
    publicExponent: Uint8Array.from([1, 0, 1]),
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const spki = await publicVerif.getPublicKeyBytes(pair.publicKey);
  return { pkcs8: b64(pkcs8), spki: b64(spki) };
}

async function issue(cmd) {
  const privateKey = await crypto.subtle.importKey("pkcs8", unb64(cmd.pkcs8), RSA_PSS, true, [
    "sign",
  ]);
  const spkiEnc = util.convertRSASSAPSSToEnc(unb64(cmd.spki));
  const publicKey = await crypto.subtle.importKey("spki", spkiEnc, RSA_PSS, true, ["verify"]);
  const issuer = new Issuer(BlindRSAMode.PSS, "interop-issuer", privateKey, publicKey);
  const chl = firstChallenge(cmd.www_authenticate);
  const client = new Client(BlindRSAMode.PSS);
  const request = await client.createTokenRequest(chl.challenge, chl.tokenKey);
  const tokRes = await issuer.issue(request);
  const token = await client.finalize(tokRes);
  if (!(await issuer.verify(token))) throw new Error("their issuer does not verify its own token");
  return { authorization: new AuthorizationHeader(token).toString(true) };
}

const cmd = await readStdin();
const ops = { client: asClient, keygen, issue };
if (!(cmd.op in ops)) throw new Error(`unknown op ${cmd.op}`);
process.stdout.write(JSON.stringify(await ops[cmd.op](cmd)) + "\n");
