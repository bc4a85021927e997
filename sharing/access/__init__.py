"""Who may see what: the one package that decides it.

- ``rules``: which studies a signed-in user may see, and which a patient may share.
- ``scope``: the viewer of a request, a signed-in user (``UserScope``) or the holder of an opened
  share (``ShareScope``); every page, download, DICOMweb route and service narrows its ``studies()``.
- ``session``: the share session, the server-side grant a share link is swapped for once its check
  passes.
- ``decorators``: ``for_user`` and ``for_share``, which resolve a view's scope where its URL is
  declared, so that one view serves ``/studies/…`` and ``/s/studies/…``.

A study outside a scope answers exactly like a study that does not exist (404), so nothing leaks
about it. A share's scope is checked again on every request: a revoked, expired or locked share
stops at once (``ShareGone``, answered 410). What a scope saw is audited by
``sharing.services.viewer_audit``.
"""
