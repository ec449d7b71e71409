// Package docs generates the documents a receiver reads, from the event
// catalog: the AsyncAPI 3.0 description of the webhooks (AsyncAPI) and the
// events page. The API serves them and `hookstream docs` writes them out.
package docs
