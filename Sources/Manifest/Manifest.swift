// The Manifest layer: YAML manifests (through system libyaml) to typed, validated
// VM specs with diagnostics that name file, line and column. Filled by issue #4.
