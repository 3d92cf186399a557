"""Services that ship with lonja, hosted by `lonja up` and `lonja serve NAME`."""
