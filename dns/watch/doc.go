// Package watch keeps a complete, trimmed view of the cluster's Services and EndpointSlices with
// one client-go informer each, and hands every settled view to a callback.
//
// Model: two informers with no resync period (no periodic relists); their initial list is a
// streaming WatchList where the API server supports it (client-go's WatchListClient, on by
// default), so a node costs one watch per resource and no cluster-wide LIST after start-up.
// Objects are trimmed to the fields DNS needs before they enter the cache. Any event marks the
// view dirty; the view is read from the informer caches once the events stop for Debounce (or at
// most MaxDelay after the first), so a burst of changes costs one rebuild; after a view that took
// long to process (large clusters), the next waits twice that long (Cooldown). While the API server
// is unreachable the informers keep their last state and retry; nothing is emitted, so the last
// view keeps being served.
package watch
