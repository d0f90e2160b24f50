module abox

go 1.26.0

require (
	github.com/google/renameio/v2 v2.0.2
	github.com/trustelem/zxcvbn v1.0.1
	go.etcd.io/bbolt v1.5.0
	golang.org/x/crypto v0.59.0
)

require (
	github.com/dlclark/regexp2 v1.12.0 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/test-go/testify v1.1.4 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
