// Gatehouse passkeys: runs the WebAuthn ceremony a form describes and posts the answer
// with the form. The server put the options (JSON) in data-options and a signed state
// in a hidden field; nothing here decides anything, so pages keep working without it
// for passwords and codes.
"use strict";
(function () {
  if (window.gatehousePasskeys) return; // the script may be included twice on a page
  window.gatehousePasskeys = true;

  function toBytes(b64url) {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  }
  function toB64url(buf) {
    let bin = "";
    for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function withIds(list) {
    return (list || []).map((c) => Object.assign({}, c, { id: toBytes(c.id) }));
  }

  // The server's options with their base64url fields turned into bytes.
  function requestOptions(json) {
    const o = Object.assign({}, JSON.parse(json).publicKey);
    o.challenge = toBytes(o.challenge);
    o.allowCredentials = withIds(o.allowCredentials);
    return o;
  }
  function creationOptions(json) {
    const o = Object.assign({}, JSON.parse(json).publicKey);
    o.challenge = toBytes(o.challenge);
    o.user = Object.assign({}, o.user, { id: toBytes(o.user.id) });
    o.excludeCredentials = withIds(o.excludeCredentials);
    return o;
  }

  // The credential as the JSON the server parses.
  function credentialJSON(cred) {
    const r = cred.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults(),
      response: response,
    });
  }

  function showError(form, text) {
    const p = form.querySelector(".passkey-error");
    if (p) {
      p.textContent = text;
      p.hidden = false;
    }
  }

  function explain(err) {
    if (err && err.name === "NotAllowedError") return "The passkey request was cancelled or timed out. Try again.";
    if (err && err.name === "InvalidStateError") return "This passkey is registered already.";
    return "Your browser could not use a passkey here (" + (err && err.name ? err.name : "error") + ").";
  }

  function submitWith(form, cred) {
    form.querySelector('input[name="credential"]').value = credentialJSON(cred);
    form.submit();
  }

  function setUpSignIn(form) {
    const start = form.querySelector("[data-passkey-start]");
    let pending = null; // the conditional (autofill) request, cancelled by the button
    start.hidden = false;
    start.addEventListener("click", () => {
      if (pending) pending.abort();
      navigator.credentials
        .get({ publicKey: requestOptions(form.dataset.options) })
        .then((cred) => submitWith(form, cred))
        .catch((err) => showError(form, explain(err)));
    });
    if (!("conditional" in form.dataset) || !PublicKeyCredential.isConditionalMediationAvailable) return;
    PublicKeyCredential.isConditionalMediationAvailable().then((ok) => {
      if (!ok) return;
      pending = new AbortController();
      navigator.credentials
        .get({ publicKey: requestOptions(form.dataset.options), mediation: "conditional", signal: pending.signal })
        .then((cred) => submitWith(form, cred))
        .catch(() => {}); // aborted by the button, or dismissed: the button still works
    });
  }

  function setUpCreate(form) {
    form.querySelector("[data-passkey-start]").hidden = false;
    const nojs = form.querySelector("[data-passkey-nojs]");
    if (nojs) nojs.hidden = true;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      navigator.credentials
        .create({ publicKey: creationOptions(form.dataset.options) })
        .then((cred) => submitWith(form, cred))
        .catch((err) => showError(form, explain(err)));
    });
  }

  function init() {
    if (!window.PublicKeyCredential || !navigator.credentials) return;
    document.querySelectorAll('form[data-passkey="get"]').forEach(setUpSignIn);
    document.querySelectorAll('form[data-passkey="create"]').forEach(setUpCreate);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
