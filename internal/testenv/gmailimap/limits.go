package gmailimap

// Gmail's answers past a daily budget (LIMITS.md has the reports).
const (
	respOverQuota  = "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
	byeSessionDone = "Session expired, please login again."
)

// dayState is one account's budget day.
type dayState struct {
	Usage
	downloadExceeded, uploadExceeded bool
}

func (a *account) dayUsage(day string) *dayState {
	u := a.usage[day]
	if u == nil {
		u = &dayState{}
		a.usage[day] = u
	}
	return u
}

// overBudget decides whether n more octets of message data may be
// downloaded (download) or uploaded today. Once a budget is exceeded it
// stays exceeded for the rest of the day: Google's help says reaching a
// limit "temporarily suspends" the account. It returns nil to go ahead,
// else how to refuse. Server.mu is held.
func (c *session) overBudget(download bool, n int64) *literalRefused {
	a := c.acct
	day := c.s.dayKey(c.s.now())
	u := a.dayUsage(day)
	used, limit := u.Uploaded, c.s.opts.DailyUploadBytes
	flag := &u.uploadExceeded
	if download {
		used, limit = u.Downloaded, c.s.opts.DailyDownloadBytes
		flag = &u.downloadExceeded
	}
	if !*flag && used+n <= limit {
		return nil
	}
	*flag = true
	c.s.stats.OverLimit++
	if c.s.opts.OverLimit == OverLimitBye {
		a.suspended = day
		return &literalRefused{bye: byeSessionDone}
	}
	return &literalRefused{resp: respOverQuota}
}
