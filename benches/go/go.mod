module gcpinbench

go 1.21
