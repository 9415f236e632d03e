// A real OpenID Connect provider for the tests: npm `oidc-provider` (installed by
// scripts/install.sh into .oidc/), configured from one JSON argument, on a loopback port.
//
//   node tests/oidc/provider.mjs '{"port": 0, "modules": ".oidc/node_modules", ...}'
//
// Prints "listening PORT" when ready. Besides the provider's own endpoints it answers
// GET /_test/counts with how many token requests of each grant type it served, so a test can
// count refreshes from the provider's side.
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(process.argv[2]);
const entry = path.resolve(config.modules, 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const server = http.createServer();
await new Promise((resolve) => server.listen(config.port, '127.0.0.1', resolve));
const port = server.address().port;
const issuer = `http://127.0.0.1:${port}`;

// A signing key of its own at each start (a restart is a key rotation, as at Google).
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  clients: [
    {
      client_id: config.client_id,
      client_secret: config.client_secret,
      redirect_uris: config.redirect_uris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      // Dovecot's introspection client (its oauth2 passdb posts client_id and client_secret).
      client_id: config.introspection_client_id,
      client_secret: config.introspection_client_secret,
      redirect_uris: [],
      grant_types: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  // Any login name is an account: `sub` and `email` are that name (the Dovecot login).
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id, email: id, email_verified: true }; } };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'offline_access', 'email', 'imap'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: {
      enabled: true,
      // Only Dovecot may introspect, and only access tokens: a refresh token presented as a
      // bearer must not log in.
      async allowedPolicy(ctx, client, token) {
        return client.clientId === config.introspection_client_id && token.kind === 'AccessToken';
      },
    },
  },
  ttl: {
    AccessToken: config.access_token_seconds,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
  rotateRefreshToken: () => config.rotate_refresh_tokens,
  cookies: { keys: ['test-only-cookie-key-0123456789'] },
});

const counts = {};
provider.on('grant.success', (ctx) => {
  const kind = ctx.oidc.params.grant_type;
  counts[kind] = (counts[kind] || 0) + 1;
});
provider.on('grant.error', (ctx, error) => {
  const kind = `${ctx.oidc.params?.grant_type}:${error.error}`;
  counts[kind] = (counts[kind] || 0) + 1;
});

const handle = provider.callback();
server.on('request', (req, res) => {
  if (req.url === '/_test/counts') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(counts));
    return;
  }
  handle(req, res);
});
console.log(`listening ${port}`);
