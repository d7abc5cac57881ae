// Command etcd is the upstream etcd server, built from the version that
// k8s.io/kubernetes itself depends on so both share one module graph.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
