package commcare

import "github.com/viaduct-nys/viaduct/pkg/eclrs"

// DBTX is what the query functions in this package need: a pool, a connection or a transaction, the same handle as
// pkg/eclrs's. Callers pass it per call and so choose the transaction boundaries.
type DBTX = eclrs.DBTX
