package gosdk

import (
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/baidubce/bce-sdk-go/services/bcc/api"
)

var (
	keypairIDRe   = regexp.MustCompile(`^k-[A-Za-z0-9]{8}$`)
	fingerprintRe = regexp.MustCompile(`^([0-9a-f]{2}:){15}[0-9a-f]{2}$`)
)

// checkKeypair fails the test unless kp holds real values in every field the SDK decodes.
func checkKeypair(t *testing.T, what string, kp *api.KeypairModel) {
	t.Helper()
	if !keypairIDRe.MatchString(kp.KeypairId) || kp.Name == "" || kp.RegionId == "" ||
		!fingerprintRe.MatchString(kp.FingerPrint) || !isoTimeRe.MatchString(kp.CreatedTime) ||
		!strings.HasPrefix(kp.PublicKey, "ssh-") {
		t.Errorf("%s: missing or odd fields: %+v", what, kp)
	}
}

func TestCreateGetDeleteKeypair(t *testing.T) {
	c := newClient(t)
	kp := newKeypair(t, c, "go-sdk")
	checkKeypair(t, "CreateKeypair", kp)
	if kp.Name != "go-sdk" || kp.Description != "made by "+t.Name() || kp.InstanceCount != 0 {
		t.Errorf("CreateKeypair: %+v", kp)
	}
	if !strings.Contains(kp.PrivateKey, "PRIVATE KEY-----") || !strings.HasPrefix(kp.PublicKey, "ssh-rsa ") {
		t.Errorf("CreateKeypair: want an RSA pair with its private key, got %q / %q",
			kp.PublicKey, kp.PrivateKey)
	}

	got := getKeypair(t, c, kp.KeypairId)
	checkKeypair(t, "GetKeypairDetail", got)
	if got.PrivateKey != "" {
		t.Error("GetKeypairDetail shows the private key")
	}
	if got.KeypairId != kp.KeypairId || got.PublicKey != kp.PublicKey ||
		got.FingerPrint != kp.FingerPrint || got.CreatedTime != kp.CreatedTime {
		t.Errorf("GetKeypairDetail: %+v, created %+v", got, kp)
	}

	must(t, "DeleteKeypair", c.DeleteKeypair(&api.DeleteKeypairArgs{KeypairId: kp.KeypairId}))
	_, err := c.GetKeypairDetail(kp.KeypairId)
	expectError(t, err, 404, "Keypair.KeypairNotExist", "Keypair not exist.")
	err = c.DeleteKeypair(&api.DeleteKeypairArgs{KeypairId: kp.KeypairId})
	expectError(t, err, 404, "Keypair.KeypairNotExist", "Keypair not exist.")

	_, err = c.CreateKeypair(&api.CreateKeypairArgs{Name: ""})
	expectError(t, err, 400, "Keypair.KeypairNameInvalid", "")
}

// sshEd25519 is an OpenSSH public key line and its MD5 fingerprint (as ssh-keygen -E md5 shows it).
func sshEd25519(t *testing.T) (string, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	must(t, "ed25519.GenerateKey", err)
	var blob []byte
	for _, field := range [][]byte{[]byte("ssh-ed25519"), pub} {
		blob = binary.BigEndian.AppendUint32(blob, uint32(len(field)))
		blob = append(blob, field...)
	}
	sum := md5.Sum(blob)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02x", b)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob), strings.Join(hex, ":")
}

func TestImportKeypair(t *testing.T) {
	c := newClient(t)
	line, fingerprint := sshEd25519(t)
	res, err := c.ImportKeypair(&api.ImportKeypairArgs{Name: "imported", Description: "mine",
		PublicKey: line + " me@laptop"})
	must(t, "ImportKeypair", err)
	kp := res.Keypair
	checkKeypair(t, "ImportKeypair", &kp)
	if kp.Name != "imported" || kp.Description != "mine" || kp.PrivateKey != "" ||
		kp.FingerPrint != fingerprint || !strings.HasPrefix(kp.PublicKey, line) {
		t.Errorf("ImportKeypair: want fingerprint %s and key %s, got %+v", fingerprint, line, kp)
	}
	if got := getKeypair(t, c, kp.KeypairId); got.FingerPrint != fingerprint || got.PublicKey != kp.PublicKey {
		t.Errorf("GetKeypairDetail after import: %+v", got)
	}

	_, err = c.ImportKeypair(&api.ImportKeypairArgs{Name: "again", PublicKey: line})
	expectError(t, err, 400, "Keypair.KeypairPublicKeyExist", "")
	_, err = c.ImportKeypair(&api.ImportKeypairArgs{Name: "bad", PublicKey: "ssh-rsa not-base64!"})
	expectError(t, err, 400, "Keypair.PublicKeyFormatInvalid", "")
}

func TestListKeypairsWithPaging(t *testing.T) {
	c := newClient(t)
	var made []string
	for i := 0; i < 5; i++ {
		made = append(made, newKeypair(t, c, fmt.Sprintf("page-%d", i)).KeypairId)
	}

	all, err := c.ListKeypairs(nil)
	must(t, "ListKeypairs", err)
	if all.IsTruncated || all.NextMarker != "" || len(all.Keypairs) != 5 {
		t.Fatalf("ListKeypairs: want this account's 5 pairs on one page, got %+v", all)
	}
	for i, kp := range all.Keypairs {
		checkKeypair(t, "ListKeypairs", &kp)
		if kp.KeypairId != made[i] || kp.PrivateKey != "" {
			t.Errorf("ListKeypairs[%d]: want %s (creation order) without a private key, got %+v",
				i, made[i], kp)
		}
	}

	// two at a time: 2 + 2 + 1, each page starting at the last one's nextMarker
	var paged []string
	marker := ""
	for _, want := range []int{2, 2, 1} {
		res, err := c.ListKeypairs(&api.ListKeypairArgs{Marker: marker, MaxKeys: 2})
		must(t, "ListKeypairs page", err)
		if len(res.Keypairs) != want || res.MaxKeys != 2 || res.Marker != marker ||
			res.IsTruncated != (want == 2) || (res.NextMarker != "") != res.IsTruncated {
			t.Fatalf("ListKeypairs from %q by 2: %+v", marker, res)
		}
		for _, kp := range res.Keypairs {
			paged = append(paged, kp.KeypairId)
		}
		marker = res.NextMarker
	}
	if strings.Join(paged, ",") != strings.Join(made, ",") {
		t.Errorf("paging by 2 gave %v, want %v", paged, made)
	}

	// by name
	named, err := c.ListKeypairs(&api.ListKeypairArgs{Name: "page-3"})
	must(t, "ListKeypairs name", err)
	if len(named.Keypairs) != 1 || named.Keypairs[0].KeypairId != made[3] {
		t.Errorf("ListKeypairs name=page-3: %+v", named)
	}

	_, err = c.ListKeypairs(&api.ListKeypairArgs{Marker: "k-NoSuch00", MaxKeys: 2})
	expectError(t, err, 400, "InappropriateJSON", "")
}

func TestRenameAndDescribeKeypair(t *testing.T) {
	c := newClient(t)
	kp := newKeypair(t, c, "before")

	must(t, "RenameKeypair", c.RenameKeypair(&api.RenameKeypairArgs{KeypairId: kp.KeypairId, Name: "after"}))
	must(t, "UpdateKeypairDescription", c.UpdateKeypairDescription(
		&api.KeypairUpdateDescArgs{KeypairId: kp.KeypairId, Description: "described"}))
	got := getKeypair(t, c, kp.KeypairId)
	if got.Name != "after" || got.Description != "described" || got.FingerPrint != kp.FingerPrint {
		t.Errorf("after rename and updateDesc: %+v", got)
	}
	must(t, "UpdateKeypairDescription to empty", c.UpdateKeypairDescription(
		&api.KeypairUpdateDescArgs{KeypairId: kp.KeypairId}))
	if got := getKeypair(t, c, kp.KeypairId); got.Description != "" || got.Name != "after" {
		t.Errorf("after clearing the description: %+v", got)
	}

	err := c.RenameKeypair(&api.RenameKeypairArgs{KeypairId: kp.KeypairId, Name: ""})
	expectError(t, err, 400, "Keypair.KeypairNameInvalid", "")
	err = c.RenameKeypair(&api.RenameKeypairArgs{KeypairId: "k-NoSuch00", Name: "x"})
	expectError(t, err, 404, "Keypair.KeypairNotExist", "Keypair not exist.")
	err = c.UpdateKeypairDescription(&api.KeypairUpdateDescArgs{KeypairId: "k-NoSuch00", Description: "x"})
	expectError(t, err, 404, "Keypair.KeypairNotExist", "Keypair not exist.")
}
