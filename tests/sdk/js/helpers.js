'use strict';
// Shared by the *.test.js files: a client of Baidu's JavaScript SDK pointed at
// localbcc, the BCC v2 calls the tests make, and a few key helpers.
//
// @baiducloud/sdk 1.0.7 has a BccClient, but it only knows BCC's old /v1 API
// (instances and images, no key pairs; localbcc answers /v1 with 404
// InvalidVersion, see auth.test.js). So every call here goes through the
// SDK's own generic request path, BceBaseClient#sendRequest (which BccClient
// inherits): the SDK's HttpClient builds and sends the request and its Auth
// class signs it (bce-auth-v1 with signed headers host, content-length,
// content-type and x-bce-date). Nothing here computes a signature.
//
// Environment (set by tests/sdk/test_js_sdk.py): LOCALBCC_ENDPOINT
// (host:port), LOCALBCC_AK, LOCALBCC_SK (an account), LOCALBCC_AK2,
// LOCALBCC_SK2 (a second account).

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const sdk = require('@baiducloud/sdk');

function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through tests/sdk/test_js_sdk.py`);
  }
  return value;
}

const ENDPOINT = `http://${env('LOCALBCC_ENDPOINT')}`;

/** A BccClient of the SDK for one access key / secret key pair. */
function sdkClient(ak = env('LOCALBCC_AK'), sk = env('LOCALBCC_SK')) {
  return new sdk.BccClient({endpoint: ENDPOINT, credentials: {ak, sk}});
}

/** BCC v2 key pair, image and instance calls, sent and signed by the SDK. */
class Bcc {
  constructor(client = sdkClient()) {
    this.client = client;
  }

  /** One request through the SDK; resolves to the parsed JSON body ({} when empty). */
  async call(method, path, {params = {}, body} = {}) {
    const response = await this.client.sendRequest(method, path, {
      params,
      body: body === undefined ? null : JSON.stringify(body),
    });
    return response.body;
  }

  createKeypair(name, description) {
    return this.call('POST', '/v2/keypair', {params: {create: ''}, body: {name, description}});
  }

  importKeypair(name, publicKey, description) {
    return this.call('PUT', '/v2/keypair', {params: {import: ''}, body: {name, publicKey, description}});
  }

  listKeypairs(params = {}) {
    return this.call('GET', '/v2/keypair', {params});
  }

  getKeypair(keypairId) {
    return this.call('GET', `/v2/keypair/${keypairId}`);
  }

  renameKeypair(keypairId, name) {
    return this.call('PUT', `/v2/keypair/${keypairId}`, {params: {rename: ''}, body: {name}});
  }

  updateKeypairDescription(keypairId, description) {
    return this.call('PUT', `/v2/keypair/${keypairId}`, {params: {updateDesc: ''}, body: {description}});
  }

  attachKeypair(keypairId, instanceIds) {
    return this.call('PUT', `/v2/keypair/${keypairId}`, {params: {attach: ''}, body: {instanceIds}});
  }

  detachKeypair(keypairId, instanceIds) {
    return this.call('PUT', `/v2/keypair/${keypairId}`, {params: {detach: ''}, body: {instanceIds}});
  }

  deleteKeypair(keypairId) {
    return this.call('DELETE', `/v2/keypair/${keypairId}`);
  }

  listImages(params = {}) {
    return this.call('GET', '/v2/image', {params});
  }

  createInstance(body) {
    return this.call('POST', '/v2/instance', {params: {clientToken: crypto.randomUUID()}, body});
  }

  getInstance(instanceId) {
    return this.call('GET', `/v2/instance/${instanceId}`);
  }

  listInstances(params = {}) {
    return this.call('GET', '/v2/instance', {params});
  }

  releaseInstance(instanceId) {
    return this.call('DELETE', `/v2/instance/${instanceId}`);
  }

  /** The first image of this OS type (`linux` or `windows`) in the catalogue. */
  async imageId(osType) {
    const {images} = await this.listImages({imageType: 'System'});
    const image = images.find((i) => i.osType === osType);
    assert.ok(image, `no ${osType} image in GET /v2/image: ${JSON.stringify(images)}`);
    return image.id;
  }

  /** Polls GET /v2/instance/{id} until its status is `status`; resolves to the instance. */
  async waitForStatus(instanceId, status, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const {instance} = await this.getInstance(instanceId);
      if (instance.status === status) {
        return instance;
      }
      if (Date.now() > deadline) {
        assert.fail(`instance ${instanceId} is ${instance.status}, not ${status}, after ${timeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Creates one instance of `osType` and waits until it is Running; resolves to its id. */
  async runningInstance(osType = 'linux', extra = {}) {
    const imageId = await this.imageId(osType);
    const {instanceIds} = await this.createInstance({
      imageId, name: uniqueName('js-vm'), cpuCount: 1, memoryCapacityInGB: 1, purchaseCount: 1, ...extra,
    });
    assert.equal(instanceIds.length, 1);
    await this.waitForStatus(instanceIds[0], 'Running');
    return instanceIds[0];
  }
}

/**
 * Asserts that `promise` rejects the way the SDK reports a BCE error: a plain
 * object with status_code, code, message and request_id (src/http_client.js
 * `failure`), not an Error. `message`: the exact text, a RegExp, or omitted
 * (then any non-empty text).
 */
async function expectBceError(promise, statusCode, code, message) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `expected ${statusCode} ${code}, but the request succeeded`);
  assert.ok(!(error instanceof Error), `expected a BCE error object, got ${error && error.stack}`);
  assert.equal(error.status_code, statusCode, JSON.stringify(error));
  assert.equal(error.code, code, JSON.stringify(error));
  if (message instanceof RegExp) {
    assert.match(error.message, message, JSON.stringify(error));
  } else if (message !== undefined) {
    assert.equal(error.message, message, JSON.stringify(error));
  } else {
    assert.equal(typeof error.message, 'string');
    assert.ok(error.message.length > 0);
  }
  assert.match(error.request_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  return error;
}

let counter = 0;

/** A key pair / instance name that no other test uses (letters, digits, '-'). */
function uniqueName(prefix = 'js') {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}-${crypto.randomBytes(3).toString('hex')}`;
}

// --- OpenSSH public keys, computed here to check what localbcc returns ---

function sshString(buffer) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(buffer.length);
  return Buffer.concat([length, buffer]);
}

function sshMpint(unsigned) {
  let bytes = unsigned;
  while (bytes.length > 1 && bytes[0] === 0) {
    bytes = bytes.subarray(1);
  }
  if (bytes[0] & 0x80) {
    bytes = Buffer.concat([Buffer.from([0]), bytes]);
  }
  return sshString(bytes);
}

/** The OpenSSH wire blob of an RSA or Ed25519 public KeyObject. */
function sshBlob(publicKey) {
  const jwk = publicKey.export({format: 'jwk'});
  if (jwk.kty === 'RSA') {
    return Buffer.concat([
      sshString(Buffer.from('ssh-rsa')),
      sshMpint(Buffer.from(jwk.e, 'base64url')),
      sshMpint(Buffer.from(jwk.n, 'base64url')),
    ]);
  }
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    return Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(Buffer.from(jwk.x, 'base64url'))]);
  }
  throw new Error(`unsupported key type ${jwk.kty}`);
}

/** `ssh-rsa AAAA… comment` for a public KeyObject. */
function openSshPublicKey(publicKey, comment = 'js-sdk-test') {
  const blob = sshBlob(publicKey);
  const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString();
  return `${type} ${blob.toString('base64')} ${comment}`;
}

/** The blob of a one-line OpenSSH public key. */
function blobOf(openSshLine) {
  return Buffer.from(openSshLine.trim().split(/\s+/)[1], 'base64');
}

/** MD5 fingerprint as `ssh-keygen -l -E md5` prints it, without `MD5:`. */
function md5Fingerprint(openSshLine) {
  return crypto.createHash('md5').update(blobOf(openSshLine)).digest('hex').match(/../g).join(':');
}

module.exports = {
  Bcc,
  ENDPOINT,
  blobOf,
  env,
  expectBceError,
  md5Fingerprint,
  openSshPublicKey,
  sdk,
  sdkClient,
  sshBlob,
  uniqueName,
};
