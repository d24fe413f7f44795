// Package layer holds wrappers that add one concern to any connector, in
// the manner of restic's backend layers: Retry (backoff, server hints of
// how long to wait, an outage budget), Limit (a cap on concurrent calls)
// and DryRun (a destination that reads but never writes). A layer
// implements every optional interface of package connector and passes
// calls on; connector.FeaturesOf reports the abilities of the connector
// underneath (connector.Wrapper), so callers keep checking Features.
package layer
