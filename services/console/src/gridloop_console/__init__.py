"""The command-centre console (指挥中心): a thin web app over the five services' APIs."""
