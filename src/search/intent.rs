//! What a visitor's message is, before it is searched: a question, or one of the short social
//! messages (你好, 在吗, 谢谢, 好的, 再见) and requests for a person (转人工) that no article answers.
//!
//! A message is social only when it is made of nothing but such phrases (and filler like 啊, 呀, 请,
//! punctuation and emoji): 你好，我的退款到哪了 is a question that starts with a greeting. Chit-chat
//! beyond these phrases (你是不是傻呀, 今天天气真好) is left to the confidence of the search hits,
//! which finds nothing in the knowledge base about it.

use super::text::normalize;

/// What a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Anything else: searched in the knowledge base.
    Question,
    /// 你好, 在吗, 有人吗.
    Greeting,
    /// 谢谢, 辛苦了.
    Thanks,
    /// 好的, 嗯嗯, 知道了.
    Acknowledgement,
    /// 再见, 拜拜.
    Farewell,
    /// 转人工, 人工客服, 找真人: the visitor wants a person, not an article.
    AskForAgent,
}

impl Intent {
    /// Whether the knowledge base is searched for it.
    pub fn is_question(self) -> bool {
        self == Intent::Question
    }
}

/// Phrases asking for a person. Checked before the others, so 你好，转人工 asks for an agent.
const ASK_FOR_AGENT: &[&str] = &[
    "转人工客服",
    "人工客服",
    "转人工",
    "找人工",
    "要人工",
    "接人工",
    "人工服务",
    "人工",
    "真人客服",
    "真人",
    "转客服",
    "找客服",
    "联系客服",
    "在线客服",
    "客服",
];

const GREETINGS: &[&str] = &[
    "你好",
    "您好",
    "你们好",
    "在吗",
    "在么",
    "在不在",
    "有人吗",
    "有人在吗",
    "有没有人",
    "哈喽",
    "哈啰",
    "嗨",
    "hello",
    "hi",
    "hey",
    "早上好",
    "上午好",
    "中午好",
    "下午好",
    "晚上好",
    "早安",
    "晚安",
    "早",
    "亲",
    "亲亲",
    "老板",
    "掌柜",
    "小哥哥",
    "小姐姐",
    "打扰了",
    "打扰一下",
    "请问",
    "问一下",
    "咨询一下",
    "我想咨询",
    "我要咨询",
];

const THANKS: &[&str] = &[
    "谢谢",
    "多谢",
    "感谢",
    "谢啦",
    "谢了",
    "辛苦了",
    "辛苦",
    "麻烦了",
    "麻烦你了",
    "thanks",
    "thank you",
    "thx",
];

const ACKNOWLEDGEMENTS: &[&str] = &[
    "好的",
    "好滴",
    "好哒",
    "好吧",
    "行吧",
    "行",
    "好",
    "嗯嗯",
    "嗯",
    "恩恩",
    "恩",
    "哦哦",
    "哦",
    "噢",
    "知道了",
    "明白了",
    "了解了",
    "收到",
    "可以",
    "没问题",
    "没事了",
    "没有了",
    "没了",
    "ok",
    "okay",
    "是的",
    "对的",
    "对",
    "是",
    "不用了",
    "哈哈",
    "呵呵",
];

const FAREWELLS: &[&str] = &["再见", "拜拜", "拜", "bye", "byebye", "回头见", "下次见"];

/// Words that carry no request of their own around the phrases above (你好啊, 谢谢你呀, 我要转人工).
const FILLER: &[&str] = &[
    "我要", "我想", "帮我", "给我", "麻烦", "请", "你", "您", "我", "们", "啊", "呀", "哇", "哈",
    "呢", "吧", "哦", "嘛", "啦", "了", "的", "喔", "哟", "呐", "一下", "下", "吗", "么", "能",
    "可以", "快", "赶紧", "马上", "直接", "帮忙", "非常", "太", "很", "多", "大家", "朋友", "找",
    "转", "接", "叫",
];

/// The longest message that can be social; anything longer says more than hello.
const MAX_SOCIAL_CHARS: usize = 24;

/// The intent of `message`.
pub fn classify(message: &str) -> Intent {
    let normalized = normalize(message).text;
    // Letters, digits and ideographs only: punctuation, spaces and emoji say nothing here.
    let kept: String = normalized
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .collect();
    let kept = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    if kept.is_empty() || kept.chars().count() > MAX_SOCIAL_CHARS {
        return Intent::Question;
    }
    let mut found = Vec::new();
    let mut rest = kept.as_str();
    while !rest.is_empty() {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let Some((intent, length)) = longest_phrase_at(rest) else {
            return Intent::Question;
        };
        if let Some(intent) = intent {
            found.push(intent);
        }
        rest = &rest[length..];
    }
    // The request for a person wins over the politeness around it; then the last thing said.
    if found.contains(&Intent::AskForAgent) {
        return Intent::AskForAgent;
    }
    found.last().copied().unwrap_or(Intent::Question)
}

/// The longest known phrase at the start of `text`: its intent (`None` for filler) and byte length.
fn longest_phrase_at(text: &str) -> Option<(Option<Intent>, usize)> {
    let lists: [(Option<Intent>, &[&str]); 6] = [
        (Some(Intent::AskForAgent), ASK_FOR_AGENT),
        (Some(Intent::Greeting), GREETINGS),
        (Some(Intent::Thanks), THANKS),
        (Some(Intent::Acknowledgement), ACKNOWLEDGEMENTS),
        (Some(Intent::Farewell), FAREWELLS),
        (None, FILLER),
    ];
    let mut best: Option<(Option<Intent>, usize)> = None;
    for (intent, phrases) in lists {
        for phrase in phrases {
            if text.starts_with(phrase) && best.is_none_or(|(_, length)| phrase.len() > length) {
                // A Latin phrase must end at a word boundary: `hi` is not the start of `history`.
                let next = text[phrase.len()..].chars().next();
                if phrase.is_ascii() && next.is_some_and(|c| c.is_ascii_alphanumeric()) {
                    continue;
                }
                best = Some((intent, phrase.len()));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn social_messages_are_recognised() {
        for (message, intent) in [
            ("你好", Intent::Greeting),
            ("在吗？", Intent::Greeting),
            ("您好啊😊", Intent::Greeting),
            ("Hello!", Intent::Greeting),
            ("有人在吗", Intent::Greeting),
            ("谢谢你呀", Intent::Thanks),
            ("好的，谢谢", Intent::Thanks),
            ("嗯嗯 知道了", Intent::Acknowledgement),
            ("OK", Intent::Acknowledgement),
            ("拜拜~", Intent::Farewell),
            ("人工", Intent::AskForAgent),
            ("转人工！！", Intent::AskForAgent),
            ("你好，我要转人工客服", Intent::AskForAgent),
            ("麻烦帮我找一下真人客服", Intent::AskForAgent),
        ] {
            assert_eq!(classify(message), intent, "{message}");
        }
    }

    #[test]
    fn questions_stay_questions() {
        for message in [
            "你好，我的退款到哪了",
            "在吗 发票怎么开",
            "耳机没声音",
            "谢谢，那运费谁出",
            "客服电话是多少",
            "history",
            "你是不是傻呀",
        ] {
            assert_eq!(classify(message), Intent::Question, "{message}");
        }
    }

    #[test]
    fn long_or_empty_messages_are_questions() {
        assert_eq!(classify(""), Intent::Question);
        assert_eq!(classify("！！！"), Intent::Question);
        assert_eq!(classify(&"你好".repeat(20)), Intent::Question);
    }
}
