// Package download fetches release files over HTTPS from an untrusted CDN
// with hard limits on size, rate and redirects, and runs the verified
// fetch pipeline (FetchVerified): signed checksum first, tarball second.
package download
