module abox

go 1.26.0

require (
	github.com/google/renameio/v2 v2.0.2
	go.etcd.io/bbolt v1.5.0
)

require golang.org/x/sys v0.50.0 // indirect
