// A real OpenID provider (panva/oidc-provider 8.x, OpenID Certified) for agegate's oidc tests.
//
//   node provider.mjs CONFIG.json      -> prints {"ready":true,"issuer":...} on stdout when listening
//
// CONFIG: {port, redirect_uris: [...], client_secret, client_jwks: {keys: [public]},
//          identity_file (JSON {name, email}: planted identity claims, re-read per request)}
// Clients: "agegate" (client_secret_basic), "agegate-pkjwt" (private_key_jwt, ES256),
// "other-rp" (another relying party with the same redirect URIs).
// Accounts: adult (age_over_18 true), minor (false), noclaim (no age claim); userinfo also
// has a nested age_verification.result ("passed"/"failed"). The age scope also releases
// the planted name and email: agegate must drop them.
// Login page: /interaction/<uid> lists the accounts as buttons; POST .../login?account=X
// logs X in and grants the requested scopes, so a browser or an HTTP client needs no typing.
// GET /__test/last-claims: the claim names (never values) of the last id_token issued.
// Test control: POST /__test/tamper {aud?, nonce?, exp_offset?} rewrites the NEXT token
// response's id_token and re-signs it with the provider's own signing key.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const signingJwk = { ...(await exportJWK(privateKey)), kid: 'provider-es256', alg: 'ES256', use: 'sig' };

const ACCOUNTS = {
  adult: { age_over_18: true },
  minor: { age_over_18: false },
  noclaim: {},
};
// A nested result released by userinfo only, as some banks' identity services do.
const USERINFO_ONLY = {
  adult: { age_verification: { result: 'passed', threshold: 18 } },
  minor: { age_verification: { result: 'failed', threshold: 18 } },
  noclaim: {},
};

function planted() {
  if (!config.identity_file) return {};
  try {
    return JSON.parse(readFileSync(config.identity_file, 'utf8'));
  } catch {
    return {};
  }
}

let tamper = null;
let lastClaimNames = [];  // names only: the test checks the planted claims were really sent

const base = {
  redirect_uris: config.redirect_uris,
  response_types: ['code'],
  grant_types: ['authorization_code'],
  id_token_signed_response_alg: 'ES256',
};

const provider = new Provider(issuer, {
  clients: [
    { ...base, client_id: 'agegate', client_secret: config.client_secret,
      token_endpoint_auth_method: 'client_secret_basic' },
    { ...base, client_id: 'agegate-pkjwt', token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256', jwks: config.client_jwks },
    { ...base, client_id: 'other-rp', client_secret: `${config.client_secret}-other`,
      token_endpoint_auth_method: 'client_secret_basic' },
  ],
  jwks: { keys: [signingJwk] },
  claims: { openid: ['sub'], age: ['age_over_18', 'age_verification', 'name', 'email'] },
  conformIdTokenClaims: false,  // age providers put the age claims in the id_token itself
  pkce: { required: () => true, methods: ['S256'] },
  features: { devInteractions: { enabled: false }, userinfo: { enabled: true } },
  cookies: { keys: ['agegate-test-cookie-key-not-secret'] },
  ttl: { IdToken: 300, AccessToken: 300, AuthorizationCode: 60, Interaction: 600,
         Session: 600, Grant: 600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!(id in ACCOUNTS)) return undefined;
    return {
      accountId: id,
      async claims(use) {
        const nested = use === 'userinfo' ? USERINFO_ONLY[id] : {};
        return { sub: id, ...ACCOUNTS[id], ...nested, ...planted() };
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = 'text/plain';
    ctx.body = `error: ${out.error}`;
  },
});

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function resign(idToken) {
  const header = decodeProtectedHeader(idToken);
  const claims = decodeJwt(idToken);
  if (tamper.aud !== undefined) claims.aud = tamper.aud;
  if (tamper.nonce !== undefined) claims.nonce = tamper.nonce;
  if (tamper.exp_offset !== undefined) {
    claims.exp = Math.floor(Date.now() / 1000) + tamper.exp_offset;
    claims.iat = claims.exp - 300;
  }
  return new SignJWT(claims).setProtectedHeader(header).sign(privateKey);
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (ctx.path === '/__test/tamper' && ctx.method === 'POST') {
    tamper = JSON.parse(await readBody(ctx.req));
    ctx.status = 204;
    return;
  }
  if (ctx.path === '/__test/last-claims' && ctx.method === 'GET') {
    ctx.body = { names: lastClaimNames };
    return;
  }
  if (match && ctx.method === 'GET' && !match[2]) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const buttons = Object.keys(ACCOUNTS).map((id) =>
      `<form method="post" action="/interaction/${details.uid}/login?account=${id}">` +
      `<button type="submit" data-account="${id}">Sign in as ${id}</button></form>`).join('\n');
    ctx.type = 'html';
    ctx.body = `<!doctype html><html lang="en"><head><title>Test provider</title></head>` +
      `<body><h1>Test provider sign-in</h1>${buttons}</body></html>`;
    return;
  }
  if (match && ctx.method === 'POST' && match[2]) {
    await readBody(ctx.req);
    const account = ctx.query.account;
    if (!(account in ACCOUNTS)) {
      ctx.status = 400;
      ctx.body = 'unknown account';
      return;
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const grant = new provider.Grant({ accountId: account, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(ctx.req, ctx.res,
      { login: { accountId: account }, consent: { grantId } }, { mergeWithLastSubmission: false });
    ctx.respond = false;
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token) {
    lastClaimNames = Object.keys(decodeJwt(ctx.body.id_token)).sort();
  }
  if (ctx.path === '/token' && ctx.status === 200 && tamper && ctx.body && ctx.body.id_token) {
    const body = { ...ctx.body, id_token: await resign(ctx.body.id_token) };
    tamper = null;
    ctx.body = body;
  }
});

provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);
});
