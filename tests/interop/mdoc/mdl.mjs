// Builds eu.europa.ec.av.1 (or mDL) DeviceResponses with @auth0/mdl and a chain made
// with @peculiar/x509: an independent mdoc stack against agegate's eu-av verifier.
// stdin: {"now": ISO, "client_id", "response_uri", "nonce", "cases": {name: options},
//         "chain"?: a previous run's "chain", to issue under the same IACA again}
// stdout: {"anchor_pem", "other_anchor_pem", "responses": {name: base64url DeviceResponse},
//          "chain": {rootPem, dsDer (base64), dsJwk}: TEST keys, for the next run}
// The OpenID4VP 1.0 SessionTranscript is computed HERE (the library's own helper
// follows the 2023 ISO 18013-7 draft), independently of agegate's Python code.
import { createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { Document, MDoc, DeviceResponse, DataItem } from '@auth0/mdl';
import { cborEncode } from '@auth0/mdl/lib/cbor/index.js';
import { IssuerSignedItem } from '@auth0/mdl/lib/mdoc/IssuerSignedItem.js';

x509.cryptoProvider.set(webcrypto);
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const AV = 'eu.europa.ec.av.1';
const MDL = ['org.iso.18013.5.1.mDL', 'org.iso.18013.5.1'];
const DAY = 86400000;

async function makeChain(now, name) {
  const rootKeys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const dsKeys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const notBefore = new Date(now.getTime() - DAY);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: `C=UT, CN=${name}`, notBefore,
    notAfter: new Date(now.getTime() + 3650 * DAY), keys: rootKeys, signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
    ],
  });
  const ds = await x509.X509CertificateGenerator.create({
    serialNumber: '02', subject: `C=UT, CN=${name} DS`, issuer: root.subject, notBefore,
    notAfter: new Date(now.getTime() + 365 * DAY), signingKey: rootKeys.privateKey,
    publicKey: dsKeys.publicKey, signingAlgorithm: EC,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(['1.0.18013.5.1.2'], true),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      await x509.SubjectKeyIdentifierExtension.create(dsKeys.publicKey),
    ],
  });
  const dsJwk = await webcrypto.subtle.exportKey('jwk', dsKeys.privateKey);
  return { rootPem: root.toString('pem'), dsDer: new Uint8Array(ds.rawData), dsJwk };
}

async function deviceKeys() {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  return {
    pub: await webcrypto.subtle.exportKey('jwk', keys.publicKey),
    priv: await webcrypto.subtle.exportKey('jwk', keys.privateKey),
  };
}

// OpenID4VP 1.0 Appendix B.2.6.1, built from its text.
function transcriptBytes(clientId, nonce, responseUri) {
  const info = cborEncode([clientId, nonce, null, responseUri]);
  const hash = createHash('sha256').update(info).digest();
  return cborEncode(DataItem.fromData([null, null, ['OpenID4VPHandover', hash]]));
}

async function issue(chain, now, opts, device) {
  const [docType, ns] = opts.mdl ? MDL : [AV, AV];
  const midnight = new Date(Math.floor(now.getTime() / DAY) * DAY);
  const validFrom = new Date(midnight.getTime() + (opts.valid_from_days ?? 0) * DAY);
  const validUntil = new Date(midnight.getTime() + (opts.valid_until_days ?? 90) * DAY);
  const values = { age_over_18: opts.age_over_18 ?? true, ...(opts.extra ?? {}) };
  const doc = await new Document(docType)
    .addIssuerNameSpace(ns, values)
    .useDigestAlgorithm('SHA-256')
    .addValidityInfo({ signed: opts.precise ? now : validFrom, validFrom, validUntil })
    .addDeviceKeyInfo({ deviceKey: device.pub })
    .sign({ issuerPrivateKey: chain.dsJwk, issuerCertificate: chain.dsDer, alg: 'ES256' });
  return { mdoc: new MDoc([doc]).encode(), docType, ns };
}

async function present(issued, device, opts, req) {
  const fields = ['age_over_18', ...(opts.disclose_extra ?? [])].map((e) => ({
    path: [`$['${issued.ns}']['${e}']`], intent_to_retain: false,
  }));
  const pd = {
    id: 'age', input_descriptors: [{
      id: issued.docType, format: { mso_mdoc: { alg: ['ES256'] } },
      constraints: { limit_disclosure: 'required', fields },
    }],
  };
  const builder = DeviceResponse.from(issued.mdoc)
    .usingPresentationDefinition(pd)
    .usingSessionTranscriptBytes(transcriptBytes(
      opts.client_id ?? req.client_id, opts.nonce ?? req.nonce, opts.response_uri ?? req.response_uri));
  if (opts.tamper) {
    // Swap the disclosed item for one the issuer never signed (same digestID, new salt).
    const doc = builder.mdoc.documents[0];
    const items = doc.issuerSigned.nameSpaces[issued.ns];
    const i = items.findIndex((it) => it.elementIdentifier === 'age_over_18');
    items[i] = IssuerSignedItem.create(items[i].digestID, 'age_over_18', items[i].elementValue);
  }
  if (opts.mac) {
    const reader = (await deviceKeys()).pub;
    const coseKey = cborEncode(new Map([
      [1, 2], [-1, 1], [-2, Buffer.from(reader.x, 'base64url')], [-3, Buffer.from(reader.y, 'base64url')],
    ]));
    builder.authenticateWithMAC(device.priv, coseKey, 'HS256');
  } else {
    builder.authenticateWithSignature(device.priv, 'ES256');
  }
  const response = await builder.sign();
  return Buffer.from(response.encode()).toString('base64url');
}

const req = JSON.parse(await new Promise((resolve) => {
  let text = '';
  process.stdin.on('data', (chunk) => { text += chunk; });
  process.stdin.on('end', () => resolve(text));
}));
const now = new Date(req.now);
// A gateway trusts the IACA before it asks (with its nonce): later runs reuse the chain.
const chain = req.chain
  ? { ...req.chain, dsDer: new Uint8Array(Buffer.from(req.chain.dsDer, 'base64')) }
  : await makeChain(now, 'interop IACA');
const other = await makeChain(now, 'unrelated IACA');
const responses = {};
const shared = {};
for (const [name, opts] of Object.entries(req.cases)) {
  let credential = opts.same_credential_as && shared[opts.same_credential_as];
  if (!credential) {
    const device = await deviceKeys();
    credential = { device, issued: await issue(chain, now, opts, device) };
    shared[name] = credential;
  }
  responses[name] = await present(credential.issued, credential.device, opts, req);
}
process.stdout.write(JSON.stringify({
  anchor_pem: chain.rootPem, other_anchor_pem: other.rootPem, responses,
  chain: { rootPem: chain.rootPem, dsDer: Buffer.from(chain.dsDer).toString('base64'), dsJwk: chain.dsJwk },
}));
