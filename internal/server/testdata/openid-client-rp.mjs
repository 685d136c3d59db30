// A relying party built on panva's openid-client 6 (a certified RP library), driven by
// TestOpenIDClientRelyingParty. It signs in with the code flow and PKCE, checks the ID
// token's signature against the JWKS (enableNonRepudiationChecks), reads userinfo,
// refreshes from four requests at once, introspects, revokes, acts for itself with
// client credentials, signs a device in, lives through a key rollover and builds the
// logout URLs. Steps that need
// a browser are handed to the Go test: this script prints {"browse": URL} or
// {"device": …} and reads the next line of standard input for the answer. Each
// result is one JSON line on standard output; a failed check exits non-zero.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const client = await import(pathToFileURL(join(process.env.OPENID_CLIENT_MODULES, "openid-client/build/index.js")).href);
const env = process.env;
const issuer = new URL(env.ISSUER);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const ask = async (o) => {
  say(o);
  const { value, done } = await lines.next();
  if (done) throw new Error("the test closed standard input");
  return value.trim();
};
const check = (ok, what) => {
  if (!ok) throw new Error("check failed: " + what);
};
const insecure = { execute: [client.allowInsecureRequests] }; // loopback http only

// Code flow with PKCE, state and nonce, ID token signature checked.
const grafana = await client.discovery(issuer, env.CLIENT_ID, env.CLIENT_SECRET, undefined, insecure);
client.enableNonRepudiationChecks(grafana);
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authURL = client.buildAuthorizationUrl(grafana, {
  redirect_uri: env.REDIRECT_URI, scope: "openid profile email groups address",
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256", state, nonce,
});
const callback = await ask({ browse: authURL.href });
const tokens = await client.authorizationCodeGrant(grafana, new URL(callback), {
  pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce,
});
const claims = tokens.claims();
check(claims.email_verified === true, "email_verified is true");
check(Array.isArray(claims.groups) && claims.groups.length > 0, "groups in the ID token");
check(typeof claims.sid === "string" && claims.sid !== "", "sid in the ID token");
check(typeof tokens.refresh_token === "string", "a refresh token without offline_access");
check(!tokens.scope.split(" ").includes("address"), "an unknown scope is left out of the granted scope");
say({ signed_in: claims.sub, sid: claims.sid, scope: tokens.scope });

const info = await client.fetchUserInfo(grafana, tokens.access_token, claims.sub);
check(info.email === claims.email && info.email_verified === true, "userinfo agrees with the ID token");

// Four refreshes at once with the same token (oauth2-proxy's --cookie-refresh under
// parallel requests): every one gets a working pair, and the grant lives on.
const parallel = await Promise.all([1, 2, 3, 4].map(() => client.refreshTokenGrant(grafana, tokens.refresh_token)));
for (const t of parallel) check(t.claims().sub === claims.sub && t.claims().sid === claims.sid, "a refreshed ID token");
const after = await client.refreshTokenGrant(grafana, parallel[3].refresh_token);
say({ refreshed: parallel.length + 1 });

// Key rollover as an RP lives through it: the test publishes a new key; the RP reads
// the key set as it does every five minutes at most (a fresh configuration here);
// once the new key signs, the RP's cached set (under a minute old, so it will not
// fetch again) already has it.
await ask({ rotate: "publish" });
const reread = await client.discovery(issuer, env.CLIENT_ID, env.CLIENT_SECRET, undefined, insecure);
client.enableNonRepudiationChecks(reread);
const kidOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[0], "base64url")).kid;
const beforeRoll = await client.refreshTokenGrant(reread, after.refresh_token);
await ask({ rotate: "sign" });
const rolled = await client.refreshTokenGrant(reread, beforeRoll.refresh_token);
check(kidOf(rolled.id_token) !== kidOf(beforeRoll.id_token), "the new key signs after the rollover");
say({ rolled_over: kidOf(rolled.id_token) });

const active = await client.tokenIntrospection(grafana, rolled.access_token);
check(active.active === true && active.sub === claims.sub, "introspection of a live access token");
await client.tokenRevocation(grafana, rolled.refresh_token);
let refused = "";
try {
  await client.refreshTokenGrant(grafana, rolled.refresh_token);
} catch (e) {
  refused = e.error ?? e.code ?? String(e);
}
check(refused === "invalid_grant", "a revoked refresh token is invalid_grant, got " + refused);
say({ revoked: true });

// A client acting for itself.
const robot = await client.discovery(issuer, env.ROBOT_ID, env.ROBOT_SECRET, undefined, insecure);
const own = await client.clientCredentialsGrant(robot, { scope: "groups" });
check(typeof own.access_token === "string" && own.id_token === undefined, "client credentials");
say({ client_credentials: true });

// The device flow for a public client (a CLI), approved in the browser by the test.
const cli = await client.discovery(issuer, env.DEVICE_CLIENT_ID, undefined, client.None(), insecure);
client.enableNonRepudiationChecks(cli);
const device = await client.initiateDeviceAuthorization(cli, { scope: "openid profile" });
await ask({ device: device.user_code, verification_uri: device.verification_uri });
const deviceTokens = await client.pollDeviceAuthorizationGrant(cli, device);
check(deviceTokens.claims().sub !== undefined, "device flow ID token");
say({ device_signed_in: deviceTokens.claims().sub });

// A second sign-in for the logouts: with the ID token as hint, and without one. It
// uses the configuration that read the key set after the rotation: the first one's
// copy is from before it, and seven minutes have passed only in the database.
const verifier2 = client.randomPKCECodeVerifier();
const state2 = client.randomState();
const second = await client.authorizationCodeGrant(reread, new URL(await ask({
  browse: client.buildAuthorizationUrl(reread, {
    redirect_uri: env.REDIRECT_URI, scope: "openid", state: state2,
    code_challenge: await client.calculatePKCECodeChallenge(verifier2), code_challenge_method: "S256",
  }).href,
})), { pkceCodeVerifier: verifier2, expectedState: state2 });
await ask({
  logout: client.buildEndSessionUrl(reread, {
    id_token_hint: second.id_token, post_logout_redirect_uri: env.POST_LOGOUT_URI, state: "bye",
  }).href,
});
await ask({ logout_without_hint: client.buildEndSessionUrl(reread, { post_logout_redirect_uri: env.POST_LOGOUT_URI }).href });
say({ done: true });
process.exit(0);
