module syncmap/stress/go

go 1.19
