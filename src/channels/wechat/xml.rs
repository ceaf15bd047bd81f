//! The XML of WeChat's pushes: 公众号 messages and events (plain, or wrapped in an `<Encrypt>`
//! envelope in safe mode) and 企业微信's envelope and 微信客服 event. Read and written with quick-xml's
//! serde support; every field is optional text here, and [`Push::official_message`] turns a 公众号
//! push into what kefu handles.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Every field a push may carry. Unknown elements (`MsgDataId`, `Idx`, a `Video` block…) are
/// skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Push {
    /// The 公众号's original id (`gh_…`), or the CorpID.
    #[serde(
        rename = "ToUserName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub to_user_name: Option<String>,
    /// The sender's OpenID.
    #[serde(
        rename = "FromUserName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub from_user_name: Option<String>,
    /// Unix seconds.
    #[serde(
        rename = "CreateTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub create_time: Option<String>,
    /// `text`, `image`, `voice`, `location`, `event`…
    #[serde(rename = "MsgType", default, skip_serializing_if = "Option::is_none")]
    pub msg_type: Option<String>,
    /// Text of a `text` message.
    #[serde(rename = "Content", default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Picture address of an `image` message.
    #[serde(rename = "PicUrl", default, skip_serializing_if = "Option::is_none")]
    pub pic_url: Option<String>,
    /// Media of an `image` or `voice` message (temporary material, fetched with `media/get`).
    #[serde(rename = "MediaId", default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// Voice format (`amr`, `speex`).
    #[serde(rename = "Format", default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Speech recognition of a voice message, when the account turned it on.
    #[serde(
        rename = "Recognition",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub recognition: Option<String>,
    /// Latitude of a `location` message.
    #[serde(
        rename = "Location_X",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub location_x: Option<String>,
    /// Longitude of a `location` message.
    #[serde(
        rename = "Location_Y",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub location_y: Option<String>,
    /// Map zoom of a `location` message.
    #[serde(rename = "Scale", default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<String>,
    /// Place name of a `location` message.
    #[serde(rename = "Label", default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Message id (absent on events).
    #[serde(rename = "MsgId", default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// Event name (`subscribe`, `unsubscribe`, `CLICK`, `SCAN`, `kf_msg_or_event`…).
    #[serde(rename = "Event", default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Menu key of `CLICK`, scene of `SCAN`/`subscribe` by QR code.
    #[serde(rename = "EventKey", default, skip_serializing_if = "Option::is_none")]
    pub event_key: Option<String>,
    /// Safe mode: the encrypted message.
    #[serde(rename = "Encrypt", default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<String>,
    /// 企业微信: the application.
    #[serde(rename = "AgentID", default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// 微信客服 `kf_msg_or_event`: the token to pass to `kf/sync_msg` (valid 10 minutes).
    #[serde(rename = "Token", default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// 微信客服 `kf_msg_or_event`: the customer-service account with new messages.
    #[serde(rename = "OpenKfId", default, skip_serializing_if = "Option::is_none")]
    pub open_kf_id: Option<String>,
}

/// A 公众号 message or event as kefu handles it.
#[derive(Debug, Clone, PartialEq)]
pub enum OfficialMessage {
    /// Text.
    Text {
        /// The text.
        content: String,
    },
    /// A picture.
    Image {
        /// Where WeChat serves it.
        pic_url: Option<String>,
        /// Its media id.
        media_id: Option<String>,
    },
    /// A voice message (kept as a file).
    Voice {
        /// Its media id.
        media_id: Option<String>,
        /// `amr` or `speex`.
        format: Option<String>,
        /// WeChat's transcription, when on.
        recognition: Option<String>,
    },
    /// A place.
    Location {
        /// Latitude.
        latitude: String,
        /// Longitude.
        longitude: String,
        /// The place's name.
        label: String,
    },
    /// An event, name in lower case (`subscribe`, `unsubscribe`, `click`, `scan`, `view`…).
    Event {
        /// The event.
        event: String,
        /// Its key (menu key, QR scene).
        key: Option<String>,
    },
    /// Any other type (`video`, `shortvideo`, `link`…), by name.
    Other {
        /// `MsgType`.
        msg_type: String,
    },
}

impl Push {
    /// Reads a push.
    ///
    /// Returns [`Error::BadRequest`] for text that is not such XML.
    pub fn parse(xml: &str) -> Result<Push> {
        quick_xml::de::from_str(xml)
            .map_err(|error| Error::BadRequest(format!("the body is not WeChat's XML: {error}")))
    }

    /// Writes the push as `<xml>…</xml>` (what the tests' stand-ins send).
    pub fn to_xml(&self) -> String {
        quick_xml::se::to_string_with_root("xml", self)
            .expect("a struct of optional strings always serialises")
    }

    /// The message or event of a 公众号 push.
    pub fn official_message(&self) -> OfficialMessage {
        let text = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        };
        let msg_type = text(&self.msg_type).unwrap_or_default().to_lowercase();
        match msg_type.as_str() {
            "text" => OfficialMessage::Text {
                // The visitor's text is kept as typed (inner spaces and line breaks).
                content: self.content.clone().unwrap_or_default(),
            },
            "image" => OfficialMessage::Image {
                pic_url: text(&self.pic_url),
                media_id: text(&self.media_id),
            },
            "voice" => OfficialMessage::Voice {
                media_id: text(&self.media_id),
                format: text(&self.format).map(|format| format.to_lowercase()),
                recognition: text(&self.recognition),
            },
            "location" => OfficialMessage::Location {
                latitude: text(&self.location_x).unwrap_or_default(),
                longitude: text(&self.location_y).unwrap_or_default(),
                label: text(&self.label).unwrap_or_default(),
            },
            "event" => OfficialMessage::Event {
                event: text(&self.event).unwrap_or_default().to_lowercase(),
                key: text(&self.event_key),
            },
            _ => OfficialMessage::Other { msg_type },
        }
    }

    /// The sender's OpenID, trimmed.
    pub fn sender(&self) -> Option<&str> {
        self.from_user_name
            .as_deref()
            .map(str::trim)
            .filter(|sender| !sender.is_empty())
    }

    /// `CreateTime` as Unix seconds.
    pub fn created(&self) -> Option<i64> {
        self.create_time.as_deref()?.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The samples of the 公众号 documentation (接收普通消息, 接收事件推送).
    const TEXT: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId><MsgDataId>xxxx</MsgDataId><Idx>xxxx</Idx></xml>";
    const IMAGE: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[this is a url]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123456</MsgId></xml>";
    const VOICE: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1357290913</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[media_id]]></MediaId><Format><![CDATA[Format]]></Format><MsgId>1234567890123456</MsgId></xml>";
    const LOCATION: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName><CreateTime>1351776360</CreateTime><MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>1234567890123456</MsgId></xml>";
    const SUBSCRIBE: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>";
    const CLICK: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[EVENTKEY]]></EventKey></xml>";
    // 微信客服's callback event (接收消息和事件).
    const KF_EVENT: &str = "<xml>\n<ToUserName><![CDATA[ww12345678910]]></ToUserName>\n<CreateTime>1348831860</CreateTime>\n<MsgType><![CDATA[event]]></MsgType>\n<Event><![CDATA[kf_msg_or_event]]></Event>\n<Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token>\n<OpenKfId><![CDATA[wkxxxxxxx]]></OpenKfId>\n</xml>";

    #[test]
    fn the_documented_messages_parse() {
        let text = Push::parse(TEXT).unwrap();
        assert_eq!(text.sender(), Some("fromUser"));
        assert_eq!(text.created(), Some(1_348_831_860));
        assert_eq!(text.msg_id.as_deref(), Some("1234567890123456"));
        assert_eq!(
            text.official_message(),
            OfficialMessage::Text {
                content: "this is a test".into()
            }
        );
        assert_eq!(
            Push::parse(IMAGE).unwrap().official_message(),
            OfficialMessage::Image {
                pic_url: Some("this is a url".into()),
                media_id: Some("media_id".into())
            }
        );
        assert_eq!(
            Push::parse(VOICE).unwrap().official_message(),
            OfficialMessage::Voice {
                media_id: Some("media_id".into()),
                format: Some("format".into()),
                recognition: None
            }
        );
        assert_eq!(
            Push::parse(LOCATION).unwrap().official_message(),
            OfficialMessage::Location {
                latitude: "23.134521".into(),
                longitude: "113.358803".into(),
                label: "位置信息".into()
            }
        );
        assert_eq!(
            Push::parse(SUBSCRIBE).unwrap().official_message(),
            OfficialMessage::Event {
                event: "subscribe".into(),
                key: None
            }
        );
        assert_eq!(
            Push::parse(CLICK).unwrap().official_message(),
            OfficialMessage::Event {
                event: "click".into(),
                key: Some("EVENTKEY".into())
            }
        );
    }

    #[test]
    fn envelopes_and_the_kf_event_parse() {
        let envelope = Push::parse("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wv]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>").unwrap();
        assert_eq!(
            envelope.encrypt.as_deref(),
            Some("RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wv")
        );
        assert_eq!(envelope.agent_id.as_deref(), Some("218"));
        let event = Push::parse(KF_EVENT).unwrap();
        assert_eq!(event.event.as_deref(), Some("kf_msg_or_event"));
        assert_eq!(
            event.token.as_deref(),
            Some("ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR")
        );
        assert_eq!(event.open_kf_id.as_deref(), Some("wkxxxxxxx"));
    }

    #[test]
    fn written_pushes_read_back_the_same_with_markup_in_the_text() {
        let push = Push {
            to_user_name: Some("gh_7f083739789a".into()),
            from_user_name: Some("oia2TjjewbmiOUlr6X-1crbLOvLw".into()),
            create_time: Some("1407743423".into()),
            msg_type: Some("text".into()),
            content: Some("<b>退款</b> & \"发票\" ]]> 怎么办".into()),
            msg_id: Some("6054768590064713728".into()),
            ..Push::default()
        };
        let xml = push.to_xml();
        assert!(xml.starts_with("<xml>"), "{xml}");
        assert_eq!(Push::parse(&xml).unwrap(), push);
    }

    #[test]
    fn text_that_is_not_xml_is_a_bad_request() {
        assert!(matches!(
            Push::parse("{\"json\": true}"),
            Err(Error::BadRequest(_))
        ));
    }
}
