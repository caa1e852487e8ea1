'use strict';
// Key pairs through Baidu's JavaScript SDK (spec §4): create, import, list,
// detail, rename, description, delete, and their errors as the SDK reports them.

const {describe, test} = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const {
  Bcc, blobOf, env, expectBceError, md5Fingerprint, openSshPublicKey, sdkClient, sshBlob, uniqueName,
} = require('./helpers');

const bcc = new Bcc();

const KEYPAIR_ID = /^k-[A-Za-z0-9]{8}$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

function assertKeypairShape(keypair) {
  assert.match(keypair.keypairId, KEYPAIR_ID);
  assert.equal(typeof keypair.name, 'string');
  assert.equal(typeof keypair.description, 'string');
  assert.match(keypair.publicKey, /^ssh-(rsa|ed25519) AAAA/);
  assert.equal(keypair.fingerPrint, md5Fingerprint(keypair.publicKey));
  assert.equal(keypair.instanceCount, 0);
  assert.equal(typeof keypair.regionId, 'string');
  assert.match(keypair.createdTime, TIME);
  assert.equal(keypair.createTime, keypair.createdTime);
}

describe('key pairs through @baiducloud/sdk', () => {
  test('create returns a key pair with its RSA private key, once', async () => {
    const name = uniqueName('created');
    const {keypair} = await bcc.createKeypair(name, 'made by the JS SDK');
    assertKeypairShape(keypair);
    assert.equal(keypair.name, name);
    assert.equal(keypair.description, 'made by the JS SDK');
    assert.match(keypair.publicKey, /^ssh-rsa /);

    // The private key is PEM and belongs to the public key returned with it.
    assert.match(keypair.privateKey, /^-----BEGIN RSA PRIVATE KEY-----\n/);
    const privateKey = crypto.createPrivateKey(keypair.privateKey);
    assert.equal(privateKey.asymmetricKeyType, 'rsa');
    assert.equal(privateKey.asymmetricKeyDetails.modulusLength, 2048);
    assert.deepEqual(sshBlob(crypto.createPublicKey(privateKey)), blobOf(keypair.publicKey));

    // Never shown again.
    const detail = await bcc.getKeypair(keypair.keypairId);
    assert.equal(detail.keypair.privateKey, undefined);
    assert.equal(detail.keypair.publicKey, keypair.publicKey);
    await bcc.deleteKeypair(keypair.keypairId);
  });

  test('create without a description has ""', async () => {
    const {keypair} = await bcc.createKeypair(uniqueName('nodesc'));
    assert.equal(keypair.description, '');
    await bcc.deleteKeypair(keypair.keypairId);
  });

  test('import stores the public key (RSA and Ed25519) and returns no private key', async () => {
    for (const type of ['rsa', 'ed25519']) {
      const {publicKey} = crypto.generateKeyPairSync(type, type === 'rsa' ? {modulusLength: 2048} : {});
      const line = openSshPublicKey(publicKey);
      const name = uniqueName(`imported-${type}`);
      const {keypair} = await bcc.importKeypair(name, line, `my ${type} key`);
      assertKeypairShape(keypair);
      assert.equal(keypair.name, name);
      assert.equal(keypair.description, `my ${type} key`);
      assert.equal(keypair.privateKey, undefined);
      assert.deepEqual(blobOf(keypair.publicKey), sshBlob(publicKey));
      assert.equal(keypair.fingerPrint, md5Fingerprint(line));

      // The same key again in this account is refused.
      await expectBceError(bcc.importKeypair(uniqueName('again'), line), 400, 'Keypair.KeypairPublicKeyExist');
      await bcc.deleteKeypair(keypair.keypairId);
    }
  });

  test('detail answers what create answered, less the private key', async () => {
    const {keypair} = await bcc.createKeypair(uniqueName('detail'), 'd');
    const {keypair: detail} = await bcc.getKeypair(keypair.keypairId);
    const {privateKey, ...withoutPrivate} = keypair;
    assert.ok(privateKey);
    assert.deepEqual(detail, withoutPrivate);
    await bcc.deleteKeypair(keypair.keypairId);
  });

  test('list: name filter, creation order, paging with marker and maxKeys', async () => {
    const name = uniqueName('listed');
    const ids = [];
    for (let i = 0; i < 3; i += 1) {
      ids.push((await bcc.createKeypair(name, `n${i}`)).keypair.keypairId);
    }

    const all = await bcc.listKeypairs({name});
    assert.deepEqual(all.keypairs.map((k) => k.keypairId), ids);
    assert.equal(all.isTruncated, false);
    assert.equal(all.marker, '');
    all.keypairs.forEach(assertKeypairShape);

    const first = await bcc.listKeypairs({name, maxKeys: 2});
    assert.equal(first.maxKeys, 2);
    assert.equal(first.isTruncated, true);
    assert.deepEqual(first.keypairs.map((k) => k.keypairId), ids.slice(0, 2));
    assert.equal(first.nextMarker, ids[2]);

    const second = await bcc.listKeypairs({name, maxKeys: 2, marker: first.nextMarker});
    assert.equal(second.marker, ids[2]);
    assert.equal(second.isTruncated, false);
    assert.deepEqual(second.keypairs.map((k) => k.keypairId), ids.slice(2));

    // Unfiltered, the account's list holds them too.
    const everything = await bcc.listKeypairs();
    for (const id of ids) {
      assert.ok(everything.keypairs.some((k) => k.keypairId === id), id);
    }

    await expectBceError(bcc.listKeypairs({maxKeys: 'lots'}), 400, 'InappropriateJSON');
    for (const id of ids) {
      await bcc.deleteKeypair(id);
    }
    assert.deepEqual((await bcc.listKeypairs({name})).keypairs, []);
  });

  test('rename and update description', async () => {
    const {keypair} = await bcc.createKeypair(uniqueName('before'), 'old');
    const id = keypair.keypairId;
    const renamed = uniqueName('after');

    assert.deepEqual(await bcc.renameKeypair(id, renamed), {});
    assert.equal((await bcc.getKeypair(id)).keypair.name, renamed);
    assert.deepEqual((await bcc.listKeypairs({name: renamed})).keypairs.map((k) => k.keypairId), [id]);

    await bcc.updateKeypairDescription(id, '新的描述 with spaces');
    assert.equal((await bcc.getKeypair(id)).keypair.description, '新的描述 with spaces');
    await bcc.updateKeypairDescription(id, '');
    assert.equal((await bcc.getKeypair(id)).keypair.description, '');

    await expectBceError(bcc.renameKeypair(id, '1starts-with-a-digit'), 400, 'Keypair.KeypairNameInvalid',
      'Keypair name is invalid.');
    await expectBceError(bcc.updateKeypairDescription(id, 'x'.repeat(141)), 400,
      'Keypair.KeypairDescriptionInvalid', 'Keypair description is invalid.');
    const {keypair: unchanged} = await bcc.getKeypair(id);
    assert.equal(unchanged.name, renamed);
    assert.equal(unchanged.description, '');
    await bcc.deleteKeypair(id);
  });

  test('delete, then every call on the id is 404 Keypair.KeypairNotExist', async () => {
    const {keypair} = await bcc.createKeypair(uniqueName('doomed'));
    const id = keypair.keypairId;
    assert.deepEqual(await bcc.deleteKeypair(id), {});
    const notExist = [404, 'Keypair.KeypairNotExist', 'Keypair not exist.'];
    await expectBceError(bcc.getKeypair(id), ...notExist);
    await expectBceError(bcc.deleteKeypair(id), ...notExist);
    await expectBceError(bcc.renameKeypair(id, uniqueName()), ...notExist);
    await expectBceError(bcc.updateKeypairDescription(id, 'x'), ...notExist);
    await expectBceError(bcc.getKeypair('k-nothing1'), ...notExist);
    await expectBceError(bcc.getKeypair('not-an-id'), ...notExist);
  });

  test('another account sees none of these key pairs', async () => {
    const other = new Bcc(sdkClient(env('LOCALBCC_AK2'), env('LOCALBCC_SK2')));
    const name = uniqueName('private');
    const {keypair} = await bcc.createKeypair(name);
    await expectBceError(other.getKeypair(keypair.keypairId), 404, 'Keypair.KeypairNotExist');
    await expectBceError(other.deleteKeypair(keypair.keypairId), 404, 'Keypair.KeypairNotExist');
    assert.deepEqual((await other.listKeypairs({name})).keypairs, []);
    await bcc.deleteKeypair(keypair.keypairId);
  });

  test('invalid input: bad names, bad public keys', async () => {
    await expectBceError(bcc.createKeypair('has space'), 400, 'Keypair.KeypairNameInvalid');
    await expectBceError(bcc.createKeypair('x'.repeat(66)), 400, 'Keypair.KeypairNameInvalid');
    await expectBceError(bcc.importKeypair(uniqueName(), 'ssh-rsa not-base64!'), 400,
      'Keypair.PublicKeyFormatInvalid', 'Public key format is invalid.');
    await expectBceError(bcc.importKeypair(uniqueName(), ''), 400, 'Keypair.PublicKeyFormatInvalid');
    await expectBceError(bcc.importKeypair(uniqueName()), 400, 'InappropriateJSON');
  });
});
