"""The release rules, pure: no I/O, no registry client, no Dagger.

``catalogue`` (the images and their platforms), ``versions`` (the tag rules: which tags a release
gets and why), ``labels`` (OCI labels and index annotations), ``references`` (registry and
repository names), ``plan`` (catalogue x tag x labels -> ReleasePlan).
"""
