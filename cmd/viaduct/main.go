// Command viaduct is the Viaduct daemon and its operator commands: it moves positive lab results from ECLRS exports
// into CommCare through five independent engines that share only a PostgreSQL database. The commands live in
// internal/cli; `viaduct help` lists them. This binary links no test stand-in: the demo and the fake CommCare are
// in cmd/viaduct-dev.
package main

import "github.com/viaduct-nys/viaduct/internal/cli"

func main() {
	cli.Main(nil)
}
