package gosdk

import (
	"os"
	"testing"

	"github.com/baidubce/bce-sdk-go/services/bcc/api"
)

// The SDK signs every request (bce-auth-v1, with its own signed-header set);
// a wrong secret key or an unknown access key is refused and changes nothing.
func TestWrongSecretKey(t *testing.T) {
	c := newClient(t)
	endpoint := os.Getenv("LOCALBCC_ENDPOINT")
	ak := c.Config.Credentials.AccessKeyId
	wrong := clientFor(t, endpoint, ak, "0123456789abcdef0123456789abcdef")

	_, err := wrong.ListKeypairs(nil)
	expectError(t, err, 400, "SignatureDoesNotMatch", "")
	_, err = wrong.CreateKeypair(&api.CreateKeypairArgs{Name: "never"})
	expectError(t, err, 400, "SignatureDoesNotMatch", "")
	_, err = wrong.ListImage(nil)
	expectError(t, err, 400, "SignatureDoesNotMatch", "")

	unknown := clientFor(t, endpoint, "AKnobody0000", c.Config.Credentials.SecretAccessKey)
	_, err = unknown.ListKeypairs(nil)
	expectError(t, err, 403, "InvalidAccessKeyId", "")

	res, err := c.ListKeypairs(nil)
	must(t, "ListKeypairs with the right key", err)
	if len(res.Keypairs) != 0 {
		t.Errorf("a refused CreateKeypair made a key pair: %+v", res.Keypairs)
	}
}
