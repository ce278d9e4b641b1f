// Command viaduct-dev is viaduct with the commands for trying it out and developing it, which need test
// stand-ins: `demo` (the whole pipeline on in-process S3, SQS and a fake CommCare), `fake-commcare` (a fake
// CommCare HQ to run the daemon against by hand) and `generate` (a synthetic ECLRS export). They link goaws,
// gofakes3 and the fakes, so they stay out of the production binary, cmd/viaduct, whose commands this one also has.
package main

import "github.com/viaduct-nys/viaduct/internal/cli"

// devCommands are the commands viaduct-dev adds to viaduct's.
var devCommands = map[string]cli.Command{
	"demo":          {Summary: "Run the pipeline on local stand-ins for S3, SQS and CommCare.", Run: runDemo},
	"fake-commcare": {Summary: "Serve a fake CommCare HQ for trying the daemon by hand.", Run: runFakeCommCare},
	"generate":      {Summary: "Write a synthetic ECLRS export (--rows N) to a file or standard output.", Run: runGenerate},
}

func main() {
	cli.Main(devCommands)
}
