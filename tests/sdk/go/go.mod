// localbcc driven by Baidu's official Go SDK. The SDK is not fetched from the
// network: tests/sdk/test_go_sdk.py builds this package with a copy of this
// file that adds `replace github.com/baidubce/bce-sdk-go => $BCE_SDK_GO`
// (see helpers_test.go for running it by hand).
module localbcc.test/gosdk

go 1.19

require github.com/baidubce/bce-sdk-go v0.0.0
