"""Pure request plumbing shared by every mode: paths, hosts, headers, cookies, problems."""
