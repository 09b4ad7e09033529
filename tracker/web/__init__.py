"""The web console served by the tracker (机要室管理台): pages, a JSON API and a live
room view, behind local accounts with roles."""

from tracker.web.app import WebSettings, create_app

__all__ = ["WebSettings", "create_app"]
