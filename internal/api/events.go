package api

import "net/http"

// Publisher is built by the ingest issue.
type Publisher interface{}

func (s *Server) publishEvents(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not_implemented", "", "not implemented yet")
}

func (s *Server) eventTypes(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not_implemented", "", "not implemented yet")
}
