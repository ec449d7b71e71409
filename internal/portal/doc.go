// Package portal is the customer portal: server-rendered pages, under
// /portal/, where a tenant's customers manage their endpoints, read the
// delivery log and recover failed deliveries. Access is by signed,
// one-time links (Sessions) exchanged for a session cookie; what a
// session may do is checked on the server for every route.
package portal

import "github.com/hookstream/hookstream/internal/api"

// StartPath is where a link lands: /portal/start?token=..., exchanged for
// the session cookie.
const StartPath = api.PortalStartPath
