module github.com/syncbreaker/syncbreaker

go 1.25
