"""LendSafe dashboard: `streamlit run app.py`. Starts loading the models in the background, then routes
to the pages under lendsafe/ui/."""
import streamlit as st

from lendsafe.ui import PAGES, common

st.set_page_config(page_title="LendSafe", page_icon=":material/balance:", layout="wide")
common.warm_up()
pages = [st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path, default=i == 0) for i, p in enumerate(PAGES)]
page = st.navigation(pages)
common.sidebar()
page.run()
