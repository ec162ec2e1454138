"""LendSafe dashboard: `streamlit run app.py`.

Streamlit serves ``app`` (an ``st.App``): its lifespan starts loading the models in the background as the
server starts. Each browser session runs this file as its script, which routes to the pages under
lendsafe/ui/.
"""
import streamlit as st

from lendsafe.ui import PAGES, common, startup

app = st.App(__file__, lifespan=startup.lifespan)


def main() -> None:
    st.set_page_config(page_title="LendSafe", page_icon=":material/balance:", layout="wide")
    common.warm_up()        # already warming when the server started through `app`; started here otherwise
    pages = [st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path, default=i == 0)
             for i, p in enumerate(PAGES)]
    page = st.navigation(pages)
    common.sidebar()
    try:
        page.run()
    finally:
        common.page_drawn()     # the first page has had the CPU; the warm-up may take it now


if __name__ == "__main__":
    main()
