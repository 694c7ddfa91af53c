package daemon

// Internals the external tests (package daemon_test, which may import daemontest) use.
var (
	EncodeProject   = encodeProject
	PathParamRe     = pathParamRe
	WriteSelfSigned = writeSelfSigned
)

const ProjectPrefix = projectPrefix
